package reconcile

import (
	"context"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"hutch/internal/progress"
	"hutch/plan"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// durations are the parts of apply's output that change from run to run.
var durations = regexp.MustCompile(`[0-9.]+ ms`)

func golden(t *testing.T, file, got string) {
	t.Helper()
	got = durations.ReplaceAllString(got, "N ms")
	path := "testdata/" + file
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./reconcile -run %s -update rewrites it):\ngot:\n%s\nwant:\n%s", path, t.Name(), got, want)
	}
}

// The default output of apply: the plan's summary, one line per step and
// a summary; --verbose puts the whole plan first; an unchanged manifest
// says so in one line.
func TestApplyOutput(t *testing.T) {
	e := newEnv(t)
	e.r.Parallel = 1 // one order of the step lines
	c := web("web").container(e.root)
	e.mustApply(c)
	golden(t, "apply.golden", e.out.String())

	o := web("web")
	o.memory = 64 << 20
	e.r.Verbose = true
	e.mustApply(o.container(e.root))
	golden(t, "apply-verbose.golden", e.out.String())

	e.r.Verbose = false
	e.mustApply(o.container(e.root))
	golden(t, "apply-unchanged.golden", e.out.String())
}

// slowDriver reports progress and takes its time, as a big rootfs copy
// does.
type slowDriver struct {
	Driver
	delay time.Duration
}

func (d slowDriver) Apply(ctx context.Context, ch *plan.Change) error {
	progress.Report(ctx, "3 of 10 files, 1.2 MB of 4.0 MB copied")
	time.Sleep(d.delay)
	return d.Driver.Apply(ctx, ch)
}

// A step that runs long says so while it runs, with its driver's word,
// and never after its own line.
func TestApplyShowsProgressOfLongSteps(t *testing.T) {
	defer func(a, e time.Duration) { progressAfter, progressEvery = a, e }(progressAfter, progressEvery)
	progressAfter, progressEvery = 20*time.Millisecond, time.Hour
	e := newEnv(t)
	e.r.Drivers[plan.KindRootfs] = slowDriver{e.r.Drivers[plan.KindRootfs], 300 * time.Millisecond}
	e.mustApply(web("web").container(e.root))
	out := e.out.String()
	progressLine := "… rootfs web (creating: 0 s, 3 of 10 files, 1.2 MB of 4.0 MB copied)\n"
	i, j := strings.Index(out, progressLine), strings.Index(out, "+ rootfs web (created, ")
	if i < 0 || j < 0 || i > j || strings.Count(out, "… ") != 1 {
		t.Errorf("want one progress line before the step's own:\n%s", out)
	}
}
