//go:build linux

package fs

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lddSet runs ldd and returns the real paths of the objects it lists (the
// interpreter included, linux-vdso left out), or ok=false when ldd says the
// file is not dynamic.
func lddSet(t *testing.T, path string) (set []string, ok bool) {
	cmd := exec.Command("ldd", path)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if bytes.Contains(out, []byte("not a dynamic executable")) || bytes.Contains(out, []byte("statically linked")) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("ldd %s: %v: %s", path, err, out)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		var p string
		if i := strings.Index(line, "=> "); i >= 0 {
			p = strings.Fields(line[i+3:])[0]
		} else if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "/") {
			p = f[0]
		}
		if p == "" || p == "not" {
			if strings.Contains(line, "not found") {
				t.Logf("ldd %s: %s", path, line)
				return nil, false
			}
			continue
		}
		rp, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatalf("ldd %s: %s: %v", path, p, err)
		}
		seen[rp] = true
	}
	for p := range seen {
		set = append(set, p)
	}
	sort.Strings(set)
	return set, true
}

// TestClosureMatchesLdd compares the closure with ldd's answer for every ELF
// executable under /bin and /usr/bin. Documented exceptions: none are
// expected on Debian; a file ldd cannot load (a library not found) is
// skipped, and so is a static executable.
func TestClosureMatchesLdd(t *testing.T) {
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("no ldd on this host")
	}
	l, err := newLoader("/etc/ld.so.cache", "/etc/ld.so.conf")
	if err != nil {
		t.Fatal(err)
	}
	done := map[string]bool{}
	checked := 0
	var skipped []string
	for _, dir := range []string{"/bin", "/usr/bin"} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			rp, err := filepath.EvalSymlinks(p)
			if err != nil || done[rp] {
				continue
			}
			done[rp] = true
			fi, err := os.Stat(rp)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			o, err := l.read(rp)
			if errors.Is(err, errNotELF) {
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", p, err)
				continue
			}
			if o.interp == "" && len(o.needed) == 0 {
				continue // static
			}
			// ldd runs the program through ld.so with the path as
			// given, so ld.so takes $ORIGIN from that path (/bin/jdb's
			// folder, not the JDK's); the kernel gives a running program
			// its real path, which hutch uses. ldd of the real path
			// agrees with what the program loads.
			want, ok := lddSet(t, rp)
			if !ok {
				skipped = append(skipped, p)
				continue
			}
			paths, _, err := l.closure(p, nil)
			if err != nil {
				t.Errorf("closure %s: %v", p, err)
				continue
			}
			var got []string
			seen := map[string]bool{}
			for _, q := range paths {
				rq, err := filepath.EvalSymlinks(q)
				if err != nil {
					t.Fatal(err)
				}
				if !seen[rq] {
					seen[rq] = true
					got = append(got, rq)
				}
			}
			sort.Strings(got)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("%s: closure differs from ldd (-ldd +hutch):\n%s", p, d)
			}
			checked++
		}
	}
	if checked < 50 {
		t.Fatalf("compared only %d executables with ldd", checked)
	}
	t.Logf("closure equals ldd for %d executables; ldd could not load %d: %v", checked, len(skipped), skipped)
}

func TestLdCacheParse(t *testing.T) {
	c, err := readLdCache("/etc/ld.so.cache")
	if err != nil {
		t.Fatal(err)
	}
	ps := c["libc.so.6"]
	if len(ps) == 0 {
		t.Fatalf("libc.so.6 not in the cache: %d names", len(c))
	}
	if _, err := os.Stat(ps[0]); err != nil {
		t.Fatalf("cache names %s: %v", ps[0], err)
	}
	if _, err := parseLdCache([]byte("glibc-ld.so.cache1.1short")); err == nil {
		t.Fatal("truncated cache parsed")
	}
}

func TestLdConfInclude(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "ld.so.conf"), []byte("# comment\n/opt/a\ninclude d/*.conf\nhwcap 0 nosegneg\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "d", "1.conf"), []byte("/opt/b # trailing\n/opt/a\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "d", "2.conf"), []byte("/opt/c=libc6\n"), 0o644)
	got, err := readLdConf(filepath.Join(dir, "ld.so.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"/opt/a", "/opt/b", "/opt/c"}, got); d != "" {
		t.Fatal(d)
	}
}

func TestExpandTokens(t *testing.T) {
	got := expand("$ORIGIN/../${LIB}:$PLATFORM", "/opt/x/bin", elf.ELFCLASS64, elf.EM_X86_64)
	if !strings.HasPrefix(got, "/opt/x/bin/../lib") || !strings.HasSuffix(got, ":x86_64") {
		t.Fatalf("expand: %q", got)
	}
}
