package plan

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"hutch/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenManifests are the manifests with golden outputs: the seed's and every
// file of testdata/manifests.
func goldenManifests(t testing.TB) map[string]string {
	files, err := filepath.Glob("testdata/manifests/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{"webserver": "../manifests/webserver.yaml"}
	for _, f := range files {
		out[strings.TrimSuffix(filepath.Base(f), ".yaml")] = f
	}
	return out
}

// testOptions are the default paths plus the seccomp profiles the test
// manifests name, read here because Build reads nothing.
func testOptions(t testing.TB) Options {
	o := DefaultOptions()
	body, err := os.ReadFile("testdata/profiles/small.json")
	if err != nil {
		t.Fatal(err)
	}
	o.SeccompProfiles = map[string][]byte{"/etc/hutch/seccomp/small.json": body}
	return o
}

// load loads and validates a manifest: Build's input is a valid manifest.
func load(t testing.TB, file string) *spec.Manifest {
	t.Helper()
	m, err := spec.LoadAndValidate([]string{file}, nil)
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return m
}

// configJSON is config.json as hutch export writes it.
func configJSON(t testing.TB, c *Container) []byte {
	t.Helper()
	b, err := json.MarshalIndent(c.Spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// checkGolden compares got with the golden file, or rewrites it with -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./plan -update to write it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-golden +got; go test ./plan -update rewrites it):\n%s", path, d)
	}
}

// TestGolden builds every golden manifest against an empty host and compares
// each container's config.json, the human plan and the JSON plan with
// testdata/golden/NAME/. The default seccomp profile is Docker's for this
// GOARCH, so the goldens are amd64's.
func TestGolden(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the goldens hold amd64's seccomp architectures")
	}
	for name, file := range goldenManifests(t) {
		t.Run(name, func(t *testing.T) {
			m := load(t, file)
			d, err := Build(m, testOptions(t))
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join("testdata", "golden", name)
			for _, c := range d.Containers {
				checkGolden(t, filepath.Join(dir, c.Name+".config.json"), configJSON(t, c))
			}
			p, err := NewPlan(Creates(d.Resources()))
			if err != nil {
				t.Fatal(err)
			}
			var h, j bytes.Buffer
			if err := p.Human(&h, false); err != nil {
				t.Fatal(err)
			}
			if err := p.JSON(&j); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join(dir, "plan.txt"), h.Bytes())
			checkGolden(t, filepath.Join(dir, "plan.json"), j.Bytes())
		})
	}
}

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
)

// ociSchema compiles schema/config-schema.json of the runtime-spec module
// this build uses, found in the module cache; its $refs to defs.json,
// config-linux.json and the others resolve to the files next to it, which the
// compiler's file loader reads.
func ociSchema(t testing.TB) *jsonschema.Schema {
	schemaOnce.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/opencontainers/runtime-spec").Output()
		if err != nil {
			schemaErr = err
			return
		}
		dir := strings.TrimSpace(string(out))
		c := jsonschema.NewCompiler()
		// config-schema.json says draft-04; the files it refers to say
		// nothing, and are draft-04 too.
		c.DefaultDraft(jsonschema.Draft4)
		c.AssertFormat()
		c.UseLoader(fixRefLoader{})
		schema, schemaErr = c.Compile(filepath.Join(dir, "schema", "config-schema.json"))
	})
	if schemaErr != nil {
		t.Fatalf("compile the runtime-spec schema: %v", schemaErr)
	}
	return schema
}

// fixRefLoader reads the schema files from disk, repairing the one $ref of
// runtime-spec v1.3.0's defs.json that is not a JSON pointer
// ("#definitions/uint32", without the slash; the Go validator upstream uses
// tolerates it, a strict one does not).
type fixRefLoader struct{}

func (fixRefLoader) Load(url string) (any, error) {
	path, ok := strings.CutPrefix(url, "file://")
	if !ok {
		return nil, fmt.Errorf("schema loader: only file URLs, got %s", url)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.ReplaceAll(b, []byte(`"#definitions/`), []byte(`"#/definitions/`))
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

func validateOCI(t testing.TB, config []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(config))
	if err != nil {
		t.Fatal(err)
	}
	return ociSchema(t).Validate(doc)
}

// TestConfigSchema validates every generated config.json against the OCI
// runtime-spec JSON Schema: the plan is real OCI, not OCI-like.
func TestConfigSchema(t *testing.T) {
	names := []string{}
	ms := goldenManifests(t)
	for n := range ms {
		names = append(names, n)
	}
	sort.Strings(names)
	count := 0
	for _, name := range names {
		d, err := Build(load(t, ms[name]), testOptions(t))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, c := range d.Containers {
			if err := validateOCI(t, configJSON(t, c)); err != nil {
				t.Errorf("%s: container %s: config.json is not valid OCI: %v", name, c.Name, err)
			}
			count++
		}
	}
	if count < 12 {
		t.Errorf("validated %d configs, want at least 12", count)
	}
}

// TestConfigSchemaRejects makes sure the schema check can fail: configs with
// a namespace type OCI does not know, a mount without destination, or
// no ociVersion key are refused.
func TestConfigSchemaRejects(t *testing.T) {
	d, err := Build(load(t, "../manifests/webserver.yaml"), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	good := configJSON(t, d.Containers[0])
	for name, bad := range map[string][]byte{
		"namespace":  bytes.Replace(good, []byte(`"type": "uts"`), []byte(`"type": "utsname"`), 1),
		"mount":      bytes.Replace(good, []byte(`"destination": "/proc"`), []byte(`"dest": "/proc"`), 1),
		"ociVersion": bytes.Replace(good, []byte(`"ociVersion"`), []byte(`"version"`), 1),
	} {
		if bytes.Equal(bad, good) {
			t.Fatalf("%s: the replacement did not apply", name)
		}
		if validateOCI(t, bad) == nil {
			t.Errorf("%s: a bad config passed the schema", name)
		}
	}
}

// naiveChanges diffs two desired states the way a reconciler with drivers
// would, coarsely: same ID and same JSON is a no-op, a cgroup changes in
// place, anything else that differs is replaced. Only the rendering golden
// uses it.
func naiveChanges(before, after []Resource) []*Change {
	old := map[string]Resource{}
	for _, r := range before {
		old[r.ID()] = r
	}
	var cs []*Change
	for _, r := range after {
		b, ok := old[r.ID()]
		delete(old, r.ID())
		fields := FieldDiff(b, r)
		if r.Kind() == KindAddress {
			// As the address driver: an address's order (needs) and the
			// neighbours it sets (peer) are no property of it.
			fields = slices.DeleteFunc(fields, func(f string) bool { return strings.HasPrefix(f, "needs") || strings.HasPrefix(f, "peer") })
		}
		switch {
		case !ok:
			cs = append(cs, &Change{ID: r.ID(), Kind: r.Kind(), Action: Create, After: r})
		case len(fields) == 0:
			cs = append(cs, &Change{ID: r.ID(), Kind: r.Kind(), Action: NoOp, Before: b, After: r})
		case r.Kind() == KindCgroup:
			cs = append(cs, &Change{ID: r.ID(), Kind: r.Kind(), Action: Update, Before: b, After: r, Fields: fields})
		default:
			cs = append(cs, &Change{ID: r.ID(), Kind: r.Kind(), Action: Replace, Before: b, After: r, Fields: fields, ForceReplace: fields,
				Reasons: []string{"the test's naive diff replaces every changed " + string(r.Kind())}})
		}
	}
	for _, r := range old {
		cs = append(cs, &Change{ID: r.ID(), Kind: r.Kind(), Action: Delete, Before: r})
	}
	return cs
}

// TestGoldenEveryAction renders a plan with creates, an update, replaces,
// deletes and no-ops, plainly, verbosely and in colour, and reads its JSON
// back.
func TestGoldenEveryAction(t *testing.T) {
	b, err := Build(load(t, "testdata/diff/before.yaml"), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	a, err := Build(load(t, "testdata/diff/after.yaml"), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(naiveChanges(b.Resources(), a.Resources()))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("testdata", "golden", "every-action")
	for name, o := range map[string]RenderOptions{
		"plan.txt":         {},
		"plan-verbose.txt": {Verbose: true},
		"plan-color.txt":   {Color: true},
	} {
		var h bytes.Buffer
		if err := p.Render(&h, o); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, filepath.Join(dir, name), h.Bytes())
	}
	var j bytes.Buffer
	if err := p.JSON(&j); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join(dir, "plan.json"), j.Bytes())
	back, err := ReadJSON(bytes.NewReader(j.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(p, back); d != "" {
		t.Errorf("JSON round trip (-plan +read back):\n%s", d)
	}
}
