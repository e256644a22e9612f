//go:build linux

package fs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// Where a python interpreter keeps its standard library, found by reading.
//
// hutch never runs a program the manifest names. A manifest is data: `hutch
// plan -f` of one somebody sent must be safe to read, and apply copies
// programs into a container, it does not start them on the host (where
// hutch is root). Asking the interpreter (sys.executable, sysconfig) would
// run whatever file the python field names, as root; so hutch finds the
// folders the way the interpreter finds them itself when it starts
// (CPython's Modules/getpath.py, the "landmarks"), as it reads ELF headers
// the way ld.so does instead of running ldd:
//
//   - the version X.Y is in the real executable's name (python3.11, after
//     symlinks), else in the libpython it links (libpython3.11.so.1.0);
//   - from the folder of the real executable upwards (/ excluded), the
//     first folder that holds lib/pythonX.Y/os.py (or os.pyc) is the
//     prefix, and lib/pythonX.Y the standard library (lib64 is looked at
//     after lib, for distributions built with --with-platlibdir=lib64);
//   - from the same folder upwards, the first that holds
//     lib/pythonX.Y/lib-dynload is the exec prefix: lib-dynload holds the
//     extension modules, and its parent is sysconfig's platstdlib;
//   - a venv whose interpreter is a copy (not a symlink) names its base
//     installation in pyvenv.cfg (home = /usr/bin), beside the interpreter
//     or one folder up: when the search from the executable finds nothing,
//     it goes on from there.
//
// Every interpreter of the development machine (Debian's 3.11, pyenv's 2.7
// to 3.13) gives the folders it reports itself
// (TestPythonFoundByReadingMatchesItsAnswer). The result can only be
// <prefix>/lib/pythonX.Y or <prefix>/lib64/pythonX.Y (and lib-dynload in
// it) for a prefix below /: never /, /etc or any other folder.
// `hutch plan` and `hutch apply` find the same folders by the same reading,
// so the plan shows the layer apply makes.

// pythonInfo is where an interpreter lives, with the fields named after
// what python itself would say.
type pythonInfo struct {
	// Executable is the interpreter's path as the recipe names it (sys.executable
	// when python is started by that path): its symlinks are copied too.
	Executable string
	Stdlib     string   // sysconfig's stdlib folder
	PlatStdlib string   // sysconfig's platstdlib folder
	Dynload    []string // the lib-dynload folder on sys.path, when there is one
	Version    string   // X.Y
}

// Compiled on first use: a package-level regexp is compiled by every
// hutch process at start-up, whatever its verb.
var (
	pythonName    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^python([0-9]+\.[0-9]+t?)`) })
	libpythonName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^libpython([0-9]+\.[0-9]+t?)`) })
)

// findPython reads where the interpreter name leads and where its standard
// library is. A script (a pyenv shim, a wrapper) is refused: only running
// it would tell which interpreter it starts. The answer is kept for the life
// of the driver.
func (r *resolver) findPython(name string) (*pythonInfo, error) {
	if pi, ok := r.pythons[name]; ok {
		return pi, nil
	}
	p, err := r.lookPath(name)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(real); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", real)
	}
	ld, err := r.loader()
	if err != nil {
		return nil, err
	}
	exe, err := ld.read(real)
	if errors.Is(err, errNotELF) {
		return nil, fmt.Errorf("%s; hutch reads an interpreter and never runs a program a manifest names: name the interpreter itself, %s", notELF(p), r.pythonAdvice(p))
	}
	if err != nil {
		return nil, err
	}
	ver := ""
	if m := pythonName().FindStringSubmatch(filepath.Base(real)); m != nil {
		ver = m[1]
	} else {
		for _, n := range exe.needed {
			if m := libpythonName().FindStringSubmatch(n); m != nil {
				ver = m[1]
				break
			}
		}
	}
	if ver == "" {
		return nil, fmt.Errorf("%s: its version is neither in its name (python3.11) nor in a libpython it links: name the versioned interpreter (pythonX.Y)", real)
	}
	lib := "python" + ver
	stdlib, dynload := r.pythonLandmarks(filepath.Dir(real), lib)
	if stdlib == "" {
		if home := r.pyvenvHome(p); home != "" {
			stdlib, dynload = r.pythonLandmarks(home, lib)
		}
	}
	if stdlib == "" {
		return nil, fmt.Errorf("%s: no standard library: no folder from %s up (/ excluded) holds lib/%s/os.py, where python looks for it when it starts", real, filepath.Dir(real), lib)
	}
	pi := &pythonInfo{Executable: p, Stdlib: stdlib, PlatStdlib: stdlib, Version: ver}
	if dynload != "" {
		pi.Dynload = []string{dynload}
		pi.PlatStdlib = filepath.Dir(dynload)
	}
	r.pythons[name] = pi
	return pi, nil
}

// pythonLandmarks searches from folder start up for the standard library
// (lib/<lib>/os.py) and the extension modules (lib/<lib>/lib-dynload), as
// getpath.py's search_up does. / itself is not a prefix: on a merged-/usr
// system /lib/python3.11 is /usr/lib/python3.11 seen through the /lib
// symlink, and an interpreter copied away from its installation would find
// the host's standard library there (python itself then falls back to the
// prefix it was built with, which reading cannot know). Every path looked at
// is a witness of the kept resolution: a landmark that appears later
// changes the answer.
func (r *resolver) pythonLandmarks(start, lib string) (stdlib, dynload string) {
	probe := func(p string, dir bool) bool {
		r.probed[p] = true
		fi, err := os.Stat(p)
		return err == nil && fi.IsDir() == dir && (dir || fi.Mode().IsRegular())
	}
	for d := filepath.Clean(start); d != "/"; d = filepath.Dir(d) {
		for _, libdir := range []string{"lib", "lib64"} {
			base := filepath.Join(d, libdir, lib)
			if stdlib == "" && (probe(filepath.Join(base, "os.py"), false) || probe(filepath.Join(base, "os.pyc"), false)) {
				stdlib = base
			}
			if dynload == "" && probe(filepath.Join(base, "lib-dynload"), true) {
				dynload = filepath.Join(base, "lib-dynload")
			}
		}
		if stdlib != "" && dynload != "" {
			break
		}
	}
	return stdlib, dynload
}

// pyvenvHome is the home a venv's pyvenv.cfg names (the folder of its base
// interpreter), read beside the interpreter's path or one folder up, as
// python reads it; "" when there is none.
func (r *resolver) pyvenvHome(p string) string {
	dir := filepath.Dir(p)
	for _, cfg := range []string{filepath.Join(dir, "pyvenv.cfg"), filepath.Join(filepath.Dir(dir), "pyvenv.cfg")} {
		r.probed[cfg] = true
		f, err := os.Open(cfg)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		home := ""
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "home") {
				home = strings.TrimSpace(v)
			}
		}
		f.Close()
		if filepath.IsAbs(home) {
			return filepath.Clean(home)
		}
	}
	return ""
}

// notELF says what p is, when it is not an ELF executable.
func notELF(p string) string {
	interp, arg := scriptInterp(p)
	if interp == "" {
		return fmt.Sprintf("%s is neither an ELF executable nor a #! script", p)
	}
	return fmt.Sprintf("%s is a script run by %q (its #! line), not an ELF executable", p, strings.TrimSpace(interp+" "+arg))
}

// pythonAdvice lists the ELF interpreters, found by reading, that a python
// script p may start, for an error that asks to name one of them. hutch
// never runs the script to learn which one it is.
func (r *resolver) pythonAdvice(p string) string {
	cands, pyenv := r.pythonCandidates(p)
	const most = 6
	if len(cands) == 0 {
		return "an ELF file such as /usr/bin/python3.11"
	}
	s := "such as " + strings.Join(cands[:min(len(cands), most)], ", ")
	if len(cands) > most {
		s += fmt.Sprintf(" and %d more", len(cands)-most)
	}
	if pyenv {
		s += fmt.Sprintf(" (a pyenv shim: `pyenv which %s` prints the one it starts)", filepath.Base(p))
	}
	return s
}

// pythonCandidates lists ELF interpreters of p's name, one path per file:
// for a pyenv shim (<root>/shims/NAME), <root>/versions/*/bin/NAME; then
// those on PATH.
func (r *resolver) pythonCandidates(p string) (cands []string, pyenv bool) {
	seen := map[string]bool{}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		seen[real] = true
	}
	add := func(q string) {
		real, err := filepath.EvalSymlinks(q)
		if err != nil || seen[real] || !isELF(real) {
			return
		}
		seen[real] = true
		cands = append(cands, q)
	}
	name := filepath.Base(p)
	if dir := filepath.Dir(p); filepath.Base(dir) == "shims" {
		vs, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "versions", "*", "bin", name))
		pyenv = len(vs) > 0
		for _, q := range vs {
			add(q)
		}
	}
	for _, d := range filepath.SplitList(r.pathEnv) {
		if filepath.IsAbs(d) {
			add(filepath.Join(d, name))
		}
	}
	return cands, pyenv
}

// isELF reports whether the file at p starts with the ELF magic.
func isELF(p string) bool {
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return false // a fifo would block the open
	}
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	magic := make([]byte, 4)
	_, err = f.ReadAt(magic, 0)
	return err == nil && string(magic) == "\x7fELF"
}
