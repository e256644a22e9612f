//go:build linux

package process

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hutch/plan"
)

// Tests of the supervisor's C where Go tests of a running supervisor
// cannot reach: testdata/supervisor_test.c includes its units whole and
// runs one of their functions per command (its comment lists them). No
// root needed; gcc is (cgo needs it anyway).

var cSupervisor struct {
	once sync.Once
	path string
	err  error
}

// supervisorC builds testdata/supervisor_test.c once, with the flags the
// package's C is built with (cgo.go), and returns its path.
func supervisorC(t *testing.T) string {
	t.Helper()
	cSupervisor.once.Do(func() {
		dir, err := os.MkdirTemp("", "hutch-csup")
		if err != nil {
			cSupervisor.err = err
			return
		}
		programs.Lock()
		programs.dirs = append(programs.dirs, dir)
		programs.Unlock()
		bin := filepath.Join(dir, "supervisor_test")
		out, err := exec.Command("gcc", "-std=gnu11", "-Wall", "-Werror", "-O1", "-o", bin, "testdata/supervisor_test.c").CombinedOutput()
		if err != nil {
			cSupervisor.err = fmt.Errorf("gcc: %w: %s", err, out)
			return
		}
		cSupervisor.path = bin
	})
	if cSupervisor.err != nil {
		t.Fatalf("build testdata/supervisor_test.c: %v", cSupervisor.err)
	}
	return cSupervisor.path
}

// runC runs one command of the C test program and returns its output.
func runC(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(supervisorC(t), args...).Output()
	if err != nil {
		t.Fatalf("supervisor_test %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// cConf is what sup_read_conf read (print_conf in supervisor_test.c).
type cConf struct {
	Container             string   `json:"container"`
	Digest                string   `json:"digest"`
	Restart               string   `json:"restart"`
	MaxRetries            int64    `json:"max_retries"`
	StopSignal            int64    `json:"stop_signal"`
	StopTimeoutNs         int64    `json:"stop_timeout_ns"`
	LogMaxSize            int64    `json:"log_max_size"`
	LogMaxFiles           int64    `json:"log_max_files"`
	OOMFile               string   `json:"oom_file"`
	CloneFlags            uint64   `json:"clone_flags"`
	Netns                 string   `json:"netns"`
	UIDMap                string   `json:"uid_map"`
	GIDMap                string   `json:"gid_map"`
	CgroupProcs           []string `json:"cgroup_procs"`
	HealthKind            string   `json:"health_kind"`
	HealthPort            int64    `json:"health_port"`
	HealthPath            string   `json:"health_path"`
	HealthIntervalNs      int64    `json:"health_interval_ns"`
	HealthStartIntervalNs int64    `json:"health_start_interval_ns"`
	HealthTimeoutNs       int64    `json:"health_timeout_ns"`
	HealthStartPeriodNs   int64    `json:"health_start_period_ns"`
	HealthRetries         int64    `json:"health_retries"`
	HealthArgs            []string `json:"health_args"`
	HealthNargs           int      `json:"health_nargs"`
	Changed               int      `json:"changed"`
}

// readConfC has the C read each of texts as supervisor.conf, in turn in one
// process (as a start and then reloads), and returns what it read each time.
func readConfC(t *testing.T, texts ...string) []cConf {
	t.Helper()
	var dirs []string
	for i, text := range texts {
		dir := filepath.Join(t.TempDir(), strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, confFile), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	var out []cConf
	for _, line := range strings.Split(strings.TrimSpace(runC(t, append([]string{"conf"}, dirs...)...)), "\n") {
		var c cConf
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, c)
	}
	if len(out) != len(texts) {
		t.Fatalf("%d reads printed, want %d", len(out), len(texts))
	}
	return out
}

// TestSupervisorConfRoundTrip: what the driver writes to supervisor.conf
// (confBytes) is what the supervisor reads (sup_read_conf), key by key: the
// policies, the launch of the init, and a health check whose arguments
// hold newlines, backslashes, spaces and nothing at all. (What the first
// read says of a change of the check is not used: there is no check before
// it to compare with.)
func TestSupervisorConfRoundTrip(t *testing.T) {
	args := []string{"sh", "-c", "printf '%s\\n' \"$1\"", "two\nlines", `a\nb`, `back\\slash\`, "", " spaced  out "}
	p := &plan.Process{
		Container: "web", Digest: "sha256:abc", Restart: plan.RestartPolicy{Policy: "on-failure", MaxRetries: 3},
		StopSignal: "SIGQUIT", StopTimeout: 1500 * time.Millisecond, Logs: plan.LogPolicy{MaxSize: 1 << 20, MaxFiles: 4},
		Health: &plan.HealthCheck{Kind: "exec", Command: args, Interval: 2 * time.Second, StartInterval: 50 * time.Millisecond,
			Timeout: 3 * time.Second, Retries: 4, StartPeriod: 5 * time.Second},
	}
	l := &launch{OOMFile: "/sys/fs/cgroup/memory/hutch/web/memory.oom_control", CloneFlags: 0x7c020000, Netns: "/var/run/netns/web",
		UIDMap: []string{"0 100000 65536"}, GIDMap: []string{"0 100000 1000", "1000 200000 1"}}
	for i := range confMaxCgroups {
		l.CgroupProcs = append(l.CgroupProcs, "/sys/fs/cgroup/h"+strconv.Itoa(i)+"/hutch/web/cgroup.procs")
	}
	http := *p
	http.Health = &plan.HealthCheck{Kind: "http", Port: 8080, Path: "/healthz?x=1 2", Interval: time.Second, StartInterval: time.Second, Timeout: time.Second, Retries: 1}
	for _, tc := range []struct {
		name string
		p    *plan.Process
		l    *launch
	}{
		{"exec", p, l},
		{"http", &http, &launch{}},
		{"no check", &plan.Process{Container: "c", Digest: "d", Restart: plan.RestartPolicy{Policy: "never"}}, &launch{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := confBytes(tc.p, tc.l)
			if err != nil {
				t.Fatal(err)
			}
			// Read twice, as at the start and after a SIGHUP with the
			// same file: the same values, and the check unchanged.
			reads := readConfC(t, string(b), string(b))
			got, again := reads[0], reads[1]
			if again.Changed != 0 {
				t.Errorf("a reread of the same file says the health check changed")
			}
			got.Changed, again.Changed = 0, 0
			if !reflect.DeepEqual(got, again) {
				t.Errorf("a reread of the same file reads\n%+v\nthe first read\n%+v", again, got)
			}
			sig, _ := parseSignal(tc.p.StopSignal)
			want := cConf{
				Container: tc.p.Container, Digest: tc.p.Digest, Restart: tc.p.Restart.Policy, MaxRetries: int64(tc.p.Restart.MaxRetries),
				StopSignal: int64(sig), StopTimeoutNs: int64(tc.p.StopTimeout), LogMaxSize: tc.p.Logs.MaxSize, LogMaxFiles: int64(tc.p.Logs.MaxFiles),
				OOMFile: tc.l.OOMFile, CloneFlags: uint64(tc.l.CloneFlags), Netns: tc.l.Netns, CgroupProcs: tc.l.CgroupProcs,
				// Without a check the C holds its defaults (1 ms, 1 retry).
				HealthIntervalNs: 1e6, HealthStartIntervalNs: 1e6, HealthTimeoutNs: 1e6, HealthRetries: 1,
			}
			for _, m := range tc.l.UIDMap {
				want.UIDMap += m + "\n"
			}
			for _, m := range tc.l.GIDMap {
				want.GIDMap += m + "\n"
			}
			if h := tc.p.Health; h != nil {
				want.HealthKind, want.HealthPort, want.HealthPath = h.Kind, int64(h.Port), h.Path
				want.HealthIntervalNs, want.HealthStartIntervalNs, want.HealthTimeoutNs = int64(h.Interval), int64(h.StartInterval), int64(h.Timeout)
				want.HealthStartPeriodNs, want.HealthRetries = int64(h.StartPeriod), int64(h.Retries)
				want.HealthArgs, want.HealthNargs = h.Command, len(h.Command)
			}
			if want.CgroupProcs == nil {
				want.CgroupProcs = []string{}
			}
			if want.HealthArgs == nil {
				want.HealthArgs = []string{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("the supervisor read\n%+v\nfrom\n%s\nwant\n%+v", got, b, want)
			}
		})
	}
}

// TestSupervisorConfOddLines: sup_read_conf skips a line without a space
// and a key no unit takes, keeps the last of a repeated policy and at most
// 16 cgroup files, takes an empty value as empty, keeps a backslash it has
// no escape for, and stops at 64 arguments. On a reread (SIGHUP) the
// launch of the init is forgotten but for what the new file names, the
// policies keep their values when their key is missing, a stop signal of
// 0 is SIGTERM, and whether the health check changed is said.
func TestSupervisorConfOddLines(t *testing.T) {
	var procs, args strings.Builder
	for i := range 17 {
		procs.WriteString("cgroup_procs /c" + strconv.Itoa(i) + "\n")
	}
	for range 65 {
		args.WriteString("health_arg x\n")
	}
	first := "no-space-here\nunknown_key some value\n\ncontainer first\ncontainer web\ndigest \nrestart always\nmax_retries 7\n" +
		"stop_signal 0\nnetns /var/run/netns/web\noom_file /o\nuid_map 0 1 2\nuid_map 3 4 5\n" + procs.String() +
		"health_kind exec\nhealth_interval_ns 0\nhealth_retries 0\n" + args.String()
	second := "container web\nhealth_kind exec\n" + args.String()
	third := "container web\nhealth_kind exec\nhealth_arg a\\tb\\\nhealth_arg \\\\n\\n\n"
	got := readConfC(t, first, second, third)

	c := got[0]
	if c.Container != "web" || c.Digest != "" || c.Restart != "always" || c.MaxRetries != 7 || c.StopSignal != 15 {
		t.Errorf("policies: %+v", c)
	}
	if c.Netns != "/var/run/netns/web" || c.OOMFile != "/o" || c.UIDMap != "0 1 2\n3 4 5\n" || len(c.CgroupProcs) != 16 || c.CgroupProcs[15] != "/c15" {
		t.Errorf("launch: %+v", c)
	}
	if c.HealthNargs != 64 || len(c.HealthArgs) != 64 || c.HealthIntervalNs != 1e6 || c.HealthRetries != 1 || c.Changed != 1 {
		t.Errorf("health: %d arguments, interval %d, retries %d, changed %d", c.HealthNargs, c.HealthIntervalNs, c.HealthRetries, c.Changed)
	}
	c = got[1]
	if c.Restart != "always" || c.MaxRetries != 7 || c.Netns != "" || c.OOMFile != "" || c.UIDMap != "" || len(c.CgroupProcs) != 0 || c.Changed != 0 {
		t.Errorf("reread: policies kept, launch forgotten, check unchanged: %+v", c)
	}
	c = got[2]
	if want := []string{`a\tb\`, "\\n\n"}; !reflect.DeepEqual(c.HealthArgs, want) || c.Changed != 1 {
		t.Errorf("escapes: arguments %q (changed %d), want %q", c.HealthArgs, c.Changed, want)
	}
}

// TestSupervisorJSONStrings: the strings sup_json_str writes into
// process.json and the events file decode in Go to what they were (every
// control character, quotes, backslashes, UTF-8), and a byte that is no
// UTF-8 is passed as it is.
func TestSupervisorJSONStrings(t *testing.T) {
	var ctl strings.Builder
	for c := byte(1); c < 0x20; c++ {
		ctl.WriteByte(c)
	}
	in := []string{"", "plain", ctl.String(), `"quoted" \back\ /slash/`, "\x7f", "é ü 😀 \u2028 \ufeff", "line\r\n\ttab", "<&>"}
	var hexed []string
	for _, s := range in {
		hexed = append(hexed, hex.EncodeToString([]byte(s)))
	}
	lines := strings.Split(strings.TrimSuffix(runC(t, append([]string{"json"}, hexed...)...), "\n"), "\n")
	if len(lines) != len(in) {
		t.Fatalf("%d lines for %d strings", len(lines), len(in))
	}
	for i, line := range lines {
		var got string
		if err := json.Unmarshal([]byte(line), &got); err != nil || got != in[i] {
			t.Errorf("%q written as %s, which decodes to %q (%v)", in[i], line, got, err)
		}
	}
	if out := runC(t, "json", "ff41"); out != "\"\xffA\"\n" {
		t.Errorf("a byte that is no UTF-8: %q", out)
	}
}

// TestSupervisorBackoff: the wait before restart n+1 is 100 ms doubling
// to at most 30 s, and a run of 10 s or more starts it over.
func TestSupervisorBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		ran  time.Duration
		want time.Duration
	}{
		{0, time.Second, 100 * time.Millisecond}, {1, time.Second, 200 * time.Millisecond}, {2, time.Second, 400 * time.Millisecond},
		{8, 0, 25600 * time.Millisecond}, {9, 0, 30 * time.Second}, {20, 0, 30 * time.Second}, {1000, 0, 30 * time.Second},
		{5, 10 * time.Second, 100 * time.Millisecond}, {5, 10*time.Second - 1, 3200 * time.Millisecond},
	} {
		out := strings.TrimSpace(runC(t, "backoff", strconv.Itoa(tc.n)+":"+strconv.FormatInt(int64(tc.ran), 10)))
		if got, _ := strconv.ParseInt(out, 10, 64); time.Duration(got) != tc.want {
			t.Errorf("backoff(%d, ran %v) = %s ns, want %v", tc.n, tc.ran, out, tc.want)
		}
	}
}

// TestSupervisorRestartPolicy: always restarts; on-failure after a
// non-zero exit or a signal, up to max_retries (0: no limit); never and
// an unknown policy do not.
func TestSupervisorRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy, max, restarts, code, signal string
		want                                string
	}{
		{"always", "1", "5", "0", "-", "1"},
		{"on-failure", "2", "0", "0", "-", "0"},
		{"on-failure", "2", "1", "3", "-", "1"},
		{"on-failure", "2", "2", "3", "-", "0"},
		{"on-failure", "0", "100", "3", "-", "1"},
		{"on-failure", "2", "0", "137", "SIGKILL", "1"},
		{"never", "0", "0", "3", "-", "0"},
		{"sometimes", "0", "0", "3", "-", "0"},
	} {
		if got := strings.TrimSpace(runC(t, "restart", tc.policy, tc.max, tc.restarts, tc.code, tc.signal)); got != tc.want {
			t.Errorf("%+v: restart %s", tc, got)
		}
	}
}

// TestSupervisorTimes: sup_fmt_time's times decode in Go to the instant
// given; sup_fmt_duration writes a health check's timeout (in its message
// "timed out after ...") as Go's time.Duration prints it, for the whole
// milliseconds and seconds below a minute a manifest gives.
func TestSupervisorTimes(t *testing.T) {
	for _, ts := range []time.Time{time.Unix(0, 0), time.Unix(1700000000, 5), time.Unix(1700000000, 999999999), time.Unix(4102444800, 123456000)} {
		out := strings.TrimSpace(runC(t, "time", strconv.FormatInt(ts.Unix(), 10), strconv.Itoa(ts.Nanosecond())))
		got, err := time.Parse(time.RFC3339Nano, out)
		if err != nil || !got.Equal(ts) {
			t.Errorf("%v written as %s: %v %v", ts, out, got, err)
		}
	}
	for _, d := range []time.Duration{time.Millisecond, 250 * time.Millisecond, 999 * time.Millisecond, time.Second, 1500 * time.Millisecond,
		2250 * time.Millisecond, 10001 * time.Millisecond, 59 * time.Second} {
		if got := strings.TrimSpace(runC(t, "duration", strconv.FormatInt(int64(d), 10))); got != d.String() {
			t.Errorf("%v written as %s", d, got)
		}
	}
}

// TestSupervisorHTTPStatus: the code of an HTTP status line, or -1 for a
// line that is none.
func TestSupervisorHTTPStatus(t *testing.T) {
	for line, want := range map[string]string{
		"HTTP/1.0 200 OK": "200", "HTTP/1.1 404": "404", "HTTP/1.1 503 Service Unavailable": "503",
		"HTTP/1.0 20 OK": "-1", "HTTP/1.0 2000 OK": "-1", "FTP/1.0 200 OK": "-1", "HTTP/1.0": "-1", "": "-1", "HTTP/1.0 2x0 OK": "-1",
	} {
		if got := strings.TrimSpace(runC(t, "http", line)); got != want {
			t.Errorf("%q: %s, want %s", line, got, want)
		}
	}
}

// TestSupervisorRecordsDecode: the process.json and the events line the
// supervisor writes decode as State and Event, a message with control
// characters, quotes and UTF-8 included.
func TestSupervisorRecordsDecode(t *testing.T) {
	msg := "start init: \"exec\" failed:\n\tno such file or directory \x01 é"
	dir := t.TempDir()
	runC(t, "state", dir, hex.EncodeToString([]byte(msg)))
	var st State
	if err := readJSON(filepath.Join(dir, stateFile), &st); err != nil {
		t.Fatal(err)
	}
	want := State{Container: "c\"1\\", Status: StatusExited, Digest: "sha256:ab", SupervisorPID: 42, SupervisorStart: 1234567, PID: 43, PIDStart: 1234568,
		Started: time.Unix(1700000000, 5).UTC(), Finished: time.Unix(1700000001, 999999999).UTC(), Restarts: 2, ExitCode: 137, Signal: "SIGKILL",
		OOMKilled: true, Error: msg, Health: &Health{Status: HealthUnhealthy, FailingStreak: 3, Log: []HealthResult{
			{Start: time.Unix(1700000000, 1).UTC(), End: time.Unix(1700000000, 2).UTC(), ExitCode: -1, Output: msg}}}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("process.json decodes to\n%+v\nwant\n%+v", st, want)
	}

	runC(t, "event", dir, hex.EncodeToString([]byte(msg)))
	evs, err := ReadEvents(dir, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	code := 3
	wantEv := []Event{{Time: time.Unix(1700000000, 7).UTC(), Container: "c\"1\\", Type: EventHealth, PID: 9, ExitCode: &code, Health: HealthHealthy, Message: msg}}
	if !reflect.DeepEqual(evs, wantEv) {
		t.Errorf("events.jsonl decodes to %+v, want %+v", evs, wantEv)
	}
}
