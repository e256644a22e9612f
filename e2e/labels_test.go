//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestLabels: the seed's web server carries the label tutorial: seed.
// After apply, its config.json holds it as an annotation, get -l selects
// the container by it (from that record, without the manifest), and a
// changed label is a changed config.json: the plan replaces the process
// and apply brings the record up to date.
func TestLabels(t *testing.T) {
	l := newLab(t)
	l.Apply()
	b, err := os.ReadFile(l.Bundle() + "/config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct{ Annotations map[string]string }
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Annotations["hutch.label.tutorial"] != "seed" {
		t.Fatalf("config.json annotations: %v, %v", cfg.Annotations, err)
	}
	selected := func(sel string) bool {
		t.Helper()
		var rows []struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		}
		out := l.Must("get", "-o", "json", "-l", sel)
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("get -l %s: %v\n%s", sel, err, out)
		}
		return len(rows) == 1 && rows[0].Name == l.Name && rows[0].Labels["tutorial"] != ""
	}
	if !selected("tutorial=seed") || selected("tutorial!=seed") || !selected("tutorial") || selected("!tutorial") {
		t.Error("get -l does not select the container by its label")
	}
	if out := l.Must("get", "--show-labels", l.Name); !strings.Contains(out, "tutorial=seed") {
		t.Errorf("get --show-labels:\n%s", out)
	}

	l.Write(l.Manifest, func(s string) string { return strings.Replace(s, "tutorial: seed", "tutorial: step2", 1) })
	// The labels are part of the configuration the process runs with, as
	// in Docker: a new value replaces the process.
	if code, out := l.Hutch("plan", "-f", l.Manifest); code != 2 || !strings.Contains(out, "-/+ process/"+l.Name) {
		t.Errorf("plan after a label changed: exit %d, want 2 and the process replaced:\n%s", code, out)
	}
	l.Apply()
	if !selected("tutorial=step2") {
		t.Error("get -l tutorial=step2 after apply: not selected")
	}
	l.Serving()
}
