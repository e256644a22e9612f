package spec

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden from what Validate says")

// loadAndValidate is what `hutch validate` does with one file.
func loadAndValidate(file string) (*Manifest, error) {
	return LoadAndValidate([]string{file}, nil)
}

// TestGood: every manifest under testdata/good and manifests/ loads and
// validates, and stays valid once defaulted (the defaults are valid values).
func TestGood(t *testing.T) {
	files := glob(t, "testdata/good/*.yaml")
	files = append(files, glob(t, "../manifests/*.yaml")...)
	if n := len(glob(t, "testdata/good/*.yaml")); n < 8 {
		t.Errorf("testdata/good holds %d manifests, want at least 8", n)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			m, err := loadAndValidate(f)
			if err != nil {
				t.Fatalf("%s is invalid:\n%v", f, err)
			}
			if len(m.Containers) == 0 {
				t.Fatalf("%s holds no container", f)
			}
			for _, c := range m.Containers {
				Defaults(c)
			}
			if err := Validate(m); err != nil {
				t.Fatalf("%s is invalid once defaulted:\n%v", f, err)
			}
		})
	}
}

// TestBad: every manifest under testdata/bad is refused with exactly one
// error, the one its .golden file holds (`go test ./spec -update` rewrites
// them).
func TestBad(t *testing.T) {
	files := glob(t, "testdata/bad/*.yaml")
	if len(files) < 30 {
		t.Errorf("testdata/bad holds %d manifests, want at least 30", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := loadAndValidate(f)
			if err == nil {
				t.Fatalf("%s is accepted", f)
			}
			got := err.Error() + "\n"
			if n := strings.Count(got, "\n"); n != 1 {
				t.Errorf("%s gives %d errors, want 1 (one mistake per file):\n%s", f, n, got)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./spec -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s:\n got %s\nwant %s", f, got, want)
			}
		})
	}
	// A golden whose manifest is gone is stale.
	for _, g := range glob(t, "testdata/bad/*.golden") {
		if _, err := os.Stat(strings.TrimSuffix(g, ".golden") + ".yaml"); err != nil {
			t.Errorf("%s has no manifest", g)
		}
	}
}

// TestModeline: every example manifest names the schema for editors
// (yaml-language-server), on its first line, by a path that exists.
func TestModeline(t *testing.T) {
	var files []string
	for _, pat := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml", "../manifests/*.yaml"} {
		files = append(files, glob(t, pat)...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		ref, ok := strings.CutPrefix(first, "# yaml-language-server: $schema=")
		if !ok {
			t.Errorf("%s: first line is %q, want the yaml-language-server modeline", f, first)
			continue
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(f), ref)); err != nil {
			t.Errorf("%s: schema %s: %v", f, ref, err)
		}
	}
}

func glob(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return files
}
