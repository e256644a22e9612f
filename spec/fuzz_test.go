package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes through Parse, Validate and Defaults, as
// `hutch validate` and the planner do: nothing may panic, every error names
// the file, and a manifest that validates still validates once defaulted.
// Seeds are the example manifests. Run: go test -fuzz=FuzzLoad ./spec
func FuzzLoad(f *testing.F) {
	for _, pat := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml", "../manifests/*.yaml"} {
		files, _ := filepath.Glob(pat)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, perrs := Parse("fuzz.yaml", data)
		m := &Manifest{Containers: cs}
		err := validateLoaded(m, perrs)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("validate returned %T, want Errors: %v", err, err)
			}
			for _, e := range es {
				if e.File != "fuzz.yaml" || e.Line < 0 || e.Col < 0 || e.Msg == "" {
					t.Fatalf("malformed error %#v", e)
				}
			}
			_ = es.Error()
		}
		for _, c := range cs {
			for _, p := range []string{"", "metadata.name", "spec.network.interfaces[0].name", "spec.x[3].y"} {
				_ = c.Source.Pos(p)
			}
			Defaults(c)
		}
		if err == nil {
			if err := Validate(m); err != nil {
				t.Fatalf("valid manifest is invalid once defaulted:\n%v\ninput:\n%s", err, strings.TrimSpace(string(data)))
			}
		}
	})
}
