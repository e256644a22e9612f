package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hutch/plan"
)

// FromDesired turns plan.Build's desired state into what the reconciler
// takes: each container with its config.json encoded (ConfigJSON), each
// network and link as a unit of its kind, and each the manifest it came
// from, named by ManifestSource. plan.Build reads nothing from the host,
// so the manifests' digests are read here, once per file.
func FromDesired(d *plan.Desired) ([]*Container, error) {
	sources := map[string]Source{}
	source := func(file string) Source {
		src, ok := sources[file]
		if !ok {
			src = ManifestSource(file)
			sources[file] = src
		}
		return src
	}
	var out []*Container
	for _, c := range d.Containers {
		cfg, err := ConfigJSON(c.Spec)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
		out = append(out, &Container{Name: c.Name, Resources: c.Resources, Config: cfg, Source: source(c.Source.File)})
	}
	for _, u := range d.Units {
		out = append(out, &Container{Name: u.Name, Resources: u.Resources, Source: source(u.Source.File), Kind: u.Kind})
	}
	return out, nil
}

// ConfigJSON is a container's config.json as hutch writes it, in its
// bundle and in an exported one: the runtime-spec configuration indented
// by two spaces, with a final newline. The process's digest covers these
// bytes, so one encoding serves every writer.
func ConfigJSON(s *specs.Spec) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode config.json: %w", err)
	}
	return append(b, '\n'), nil
}

// ManifestSource names a manifest file by its absolute path and the sha256
// of its bytes (standard input keeps the name "<stdin>" and no digest; a
// file that cannot be read, no digest either).
func ManifestSource(file string) Source {
	abs, err := filepath.Abs(file)
	if err != nil || file == "<stdin>" {
		return Source{Path: file}
	}
	s := Source{Path: abs}
	if b, err := os.ReadFile(abs); err == nil {
		sum := sha256.Sum256(b)
		s.Digest = "sha256:" + hex.EncodeToString(sum[:])
	}
	return s
}

// Sources lists the manifest files that -f arguments name, as spec.Load
// reads them (a folder's *.yaml and *.yml files, sorted; "-" is standard
// input), for a prune: a file that now holds no container still prunes
// what it held.
func Sources(files []string) ([]Source, error) {
	var out []Source
	for _, f := range files {
		if f == "-" {
			out = append(out, Source{Path: "<stdin>"})
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			out = append(out, ManifestSource(f))
			continue
		}
		var names []string
		for _, pat := range []string{"*.yaml", "*.yml"} {
			m, _ := filepath.Glob(filepath.Join(f, pat))
			names = append(names, m...)
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, ManifestSource(n))
		}
	}
	return out, nil
}
