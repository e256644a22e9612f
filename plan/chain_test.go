package plan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hutch/spec"
)

// chainFiles are the manifests users are shown as valid: the examples of
// manifests/ and spec's good test manifests.
func chainFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"../manifests/*.yaml", "../spec/testdata/good/*.yaml"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 12 {
		t.Fatalf("found %d manifests in manifests/ and spec/testdata/good", len(files))
	}
	return files
}

// TestChain: validation is the only gate. Every manifest that validates
// goes through spec.Load, spec.Validate, spec.Defaults (and validates
// again) and Build without an error: no rule of Build refuses what
// `hutch validate` accepted. The seccomp profiles the manifests name are
// given the bytes of a small profile (Build reads no file).
func TestChain(t *testing.T) {
	small, err := os.ReadFile("testdata/profiles/small.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range chainFiles(t) {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			m, err := spec.Load([]string{f}, nil)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if err := spec.Validate(m); err != nil {
				t.Fatalf("validate: %v", err)
			}
			o := DefaultOptions()
			o.SeccompProfiles = map[string][]byte{}
			for _, p := range SeccompPaths(m) {
				o.SeccompProfiles[p] = small
			}
			o.Images = chainImages(m)
			// Build defaults a copy itself; a manifest defaulted first must
			// give the same containers.
			d, err := Build(m, o)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			for _, c := range m.Containers {
				spec.Defaults(c)
			}
			if err := spec.Validate(m); err != nil {
				t.Fatalf("validate once defaulted: %v", err)
			}
			d2, err := Build(m, o)
			if err != nil {
				t.Fatalf("build once defaulted: %v", err)
			}
			if len(d.Containers) != len(m.Containers) || len(d2.Containers) != len(d.Containers) {
				t.Fatalf("built %d and %d containers of %d", len(d.Containers), len(d2.Containers), len(m.Containers))
			}
			for i, c := range d.Containers {
				a, _ := Digest(c.Spec, find[*Rootfs](c)[0])
				b, _ := Digest(d2.Containers[i].Spec, find[*Rootfs](d2.Containers[i])[0])
				if a != b {
					t.Errorf("container %s: digest %s, %s once defaulted", c.Name, a, b)
				}
			}
		})
	}
}

// TestChainBad: every bad manifest of spec's tests is refused by
// validation, each error at a place: file:line:col and a field path.
func TestChainBad(t *testing.T) {
	files, err := filepath.Glob("../spec/testdata/bad/*.yaml")
	if err != nil || len(files) < 30 {
		t.Fatalf("found %d bad manifests: %v", len(files), err)
	}
	for _, f := range files {
		_, err := spec.LoadAndValidate([]string{f}, nil)
		var errs spec.Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Errorf("%s: validation gives %v, want positioned errors", f, err)
			continue
		}
		for _, e := range errs {
			if e.Line < 1 || e.Col < 1 || e.File != f {
				t.Errorf("%s: error without a place: %v", f, e)
			}
		}
	}
}

// TestBuildRefusalsValidate: the bad manifests below are ones Build itself
// refuses (a route twice, an unreachable or link-local gateway without
// its device, a subnet too small, an address twice on a link...); each is
// refused by validation first, at a place, so `hutch validate` never
// passes what `hutch plan` then refuses.
func TestBuildRefusalsValidate(t *testing.T) {
	for _, name := range []string{
		"address-no-prefix", "default-route-no-address", "default-route-twice",
		"default-route-two-interfaces", "duplicate-host-ifname", "duplicate-name",
		"duplicate-netns", "link-address-twice", "link-unknown-container",
		"network-full", "network-unknown", "port-host-ip-family",
		"port-host-ip-ipv6-loopback", "port-without-address",
		"rlimit-soft-above-hard", "route-dst-twice", "route-link-local-lo",
		"route-link-local-no-dev", "route-no-via-no-dev", "route-via-unreachable",
	} {
		f := "../spec/testdata/bad/" + name + ".yaml"
		m, err := spec.Load([]string{f}, nil)
		if err != nil {
			t.Errorf("%s: load: %v", name, err)
			continue
		}
		if _, err := Build(m, DefaultOptions()); err == nil {
			t.Errorf("%s: Build accepts it; it belongs with the other bad manifests only", name)
		}
		_, err = spec.LoadAndValidate([]string{f}, nil)
		var errs spec.Errors
		if !errors.As(err, &errs) || len(errs) == 0 || errs[0].Line < 1 || errs[0].Path == "" {
			t.Errorf("%s: validation gives %v, want an error at a place and a field", name, err)
		}
	}
}

// FuzzChain: whatever bytes load and validate, Build takes; nothing
// panics. Seeds are the manifests of manifests/ and spec's testdata.
// Run: go test -fuzz=FuzzChain ./plan
func FuzzChain(f *testing.F) {
	for _, pat := range []string{"../manifests/*.yaml", "../spec/testdata/good/*.yaml", "../spec/testdata/bad/*.yaml"} {
		files, _ := filepath.Glob(pat)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	small, err := os.ReadFile("testdata/profiles/small.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, errs := spec.ParseManifest("fuzz.yaml", data)
		if len(errs) > 0 || spec.Validate(m) != nil {
			return
		}
		o := DefaultOptions()
		o.SeccompProfiles = map[string][]byte{}
		for _, p := range SeccompPaths(m) {
			o.SeccompProfiles[p] = small
		}
		o.Images = chainImages(m)
		if _, err := Build(m, o); err != nil {
			t.Fatalf("valid manifest refused by Build: %v\ninput:\n%s", err, data)
		}
	})
}

// chainImages stands for what the caller reads of each image the manifest
// names (Build reads nothing): a config with a cmd and a user looked up,
// one layer.
func chainImages(m *spec.Manifest) map[string]*Image {
	out := map[string]*Image{}
	for _, ref := range ImageRefs(m) {
		out[ref] = &Image{Ref: ref, Digest: "sha256:" + strings.Repeat("0", 64), Cmd: []string{"sh"},
			User: "www", UserResolved: true, UID: 33, GID: 33,
			Layers: []ImageLayer{{DiffID: "sha256:" + strings.Repeat("1", 64)}}}
	}
	return out
}
