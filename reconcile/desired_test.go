package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hutch/plan"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestFromDesired: every container gets its config.json as the bundle
// holds it and the manifest it came from, path and digest; a network is a
// unit of its kind without a config; standard input has no digest.
func TestFromDesired(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	os.WriteFile(a, []byte("a"), 0o644)
	os.WriteFile(b, []byte("b"), 0o644)
	spec := &specs.Spec{Version: "1.2.0", Hostname: "web", Annotations: map[string]string{"x": "<&>"}}
	ns := &plan.Netns{Name: "web"}
	d := &plan.Desired{
		Containers: []*plan.Container{
			{Name: "web", Source: plan.Source{File: a}, Spec: spec, Resources: []plan.Resource{ns}},
			{Name: "db", Source: plan.Source{File: a, Doc: 1}, Spec: &specs.Spec{Version: "1.2.0"}},
			{Name: "piped", Source: plan.Source{File: "<stdin>"}, Spec: &specs.Spec{Version: "1.2.0"}},
		},
		Units: []*plan.Unit{{Name: "labnet", Kind: "Network", Source: plan.Source{File: b}, Resources: []plan.Resource{&plan.Bridge{Name: "hb-labnet"}}}},
	}
	got, err := FromDesired(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d containers, want 4", len(got))
	}
	// The bytes of the bundle's config.json: indented, a final newline,
	// HTML characters as they are.
	wantConfig := "{\n  \"ociVersion\": \"1.2.0\",\n  \"hostname\": \"web\",\n  \"annotations\": {\n    \"x\": \"\\u003c\\u0026\\u003e\"\n  }\n}\n"
	if diff := cmp.Diff(wantConfig, string(got[0].Config)); diff != "" {
		t.Errorf("web's config.json (-want +got):\n%s", diff)
	}
	var back specs.Spec
	if err := json.Unmarshal(got[0].Config, &back); err != nil || back.Hostname != "web" {
		t.Errorf("config.json does not decode back: %v %+v", err, back)
	}
	if got[0].Name != "web" || got[0].Kind != "" || len(got[0].Resources) != 1 || got[0].Resources[0] != ns {
		t.Errorf("web: %+v", got[0])
	}
	for i, want := range []Source{{Path: a, Digest: sha("a")}, {Path: a, Digest: sha("a")}, {Path: "<stdin>"}, {Path: b, Digest: sha("b")}} {
		if got[i].Source != want {
			t.Errorf("%s: source %+v, want %+v", got[i].Name, got[i].Source, want)
		}
	}
	if u := got[3]; u.Name != "labnet" || u.Kind != "Network" || u.Config != nil || len(u.Resources) != 1 {
		t.Errorf("the network's unit: %+v", u)
	}
}

func TestSourcesExpandFoldersAsLoadDoes(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"b.yml": "b", "a.yaml": "a", "notes.txt": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Sources([]string{dir, "-"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Source{
		{Path: filepath.Join(dir, "a.yaml"), Digest: sha("a")},
		{Path: filepath.Join(dir, "b.yml"), Digest: sha("b")},
		{Path: "<stdin>"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	if _, err := Sources([]string{filepath.Join(dir, "missing.yaml")}); err == nil {
		t.Error("a missing file is not an error")
	}
}
