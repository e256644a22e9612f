//go:build linux

package fs

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// errNotELF marks a file that does not start with the ELF magic.
var errNotELF = errors.New("not an ELF file")

// elfObject is what ld.so reads from an executable or shared library to load
// it: its class and machine (a 64-bit x86-64 process can only map 64-bit
// x86-64 objects), the program interpreter (PT_INTERP), the libraries it
// needs (DT_NEEDED) and where to look for them (DT_RPATH, DT_RUNPATH).
type elfObject struct {
	class   elf.Class
	machine elf.Machine
	interp  string
	needed  []string
	rpath   []string
	runpath []string
}

func (o *elfObject) arch() string { return archName(o.class, o.machine) }

func archName(c elf.Class, m elf.Machine) string {
	bits := "64-bit"
	if c == elf.ELFCLASS32 {
		bits = "32-bit"
	}
	return bits + " " + strings.TrimPrefix(m.String(), "EM_")
}

// readELF reads the loading information of one file. A file that is not ELF
// gives errNotELF.
func readELF(path string) (*elfObject, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, errNotELF
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	o := &elfObject{class: ef.Class, machine: ef.Machine}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return nil, fmt.Errorf("%s: read PT_INTERP: %w", path, err)
			}
			o.interp = string(bytes.TrimRight(b, "\x00"))
		}
	}
	// The dynamic section's strings. A static executable has none.
	if o.needed, err = ef.DynString(elf.DT_NEEDED); err != nil {
		return nil, fmt.Errorf("%s: read DT_NEEDED: %w", path, err)
	}
	rp, err := ef.DynString(elf.DT_RPATH)
	if err != nil {
		return nil, fmt.Errorf("%s: read DT_RPATH: %w", path, err)
	}
	rup, err := ef.DynString(elf.DT_RUNPATH)
	if err != nil {
		return nil, fmt.Errorf("%s: read DT_RUNPATH: %w", path, err)
	}
	o.rpath, o.runpath = splitPath(rp), splitPath(rup)
	return o, nil
}

func splitPath(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, d := range strings.Split(v, ":") {
			if d != "" {
				out = append(out, d)
			}
		}
	}
	return out
}

// scriptInterp reads the #! line of a file: the interpreter and its argument,
// or "" when the file does not start with #!.
func scriptInterp(path string) (interp, arg string) {
	f, err := os.Open(path)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	line, _ := bufio.NewReader(io.LimitReader(f, 256)).ReadString('\n')
	if !strings.HasPrefix(line, "#!") {
		return "", ""
	}
	fields := strings.Fields(strings.TrimPrefix(line, "#!"))
	if len(fields) == 0 {
		return "", ""
	}
	interp = fields[0]
	if len(fields) > 1 {
		arg = strings.Join(fields[1:], " ")
	}
	return interp, arg
}

// loader finds the shared libraries of ELF objects the way glibc's ld.so
// does (elf/dl-load.c, _dl_map_object): a name with a slash is a path; any
// other name is looked for in the DT_RPATH of the object and of the objects
// that loaded it (only when the object has no DT_RUNPATH), then its own
// DT_RUNPATH, then /etc/ld.so.cache, then the default folders. Candidates of
// another class or machine are skipped, as ld.so skips them. LD_LIBRARY_PATH
// is not read: the container's environment is not the caller's.
type loader struct {
	cache    ldCache
	confDirs []string              // ld.so.conf folders, searched after the cache
	objs     map[string]*elfObject // read files, by path
	// probed holds every folder find looked in and the configuration
	// files read: a new library appearing there could change a closure.
	probed map[string]bool
}

func newLoader(cacheFile, confFile string) (*loader, error) {
	c, err := readLdCache(cacheFile)
	if err != nil {
		return nil, fmt.Errorf("ld.so cache: %w", err)
	}
	dirs, files, err := readLdConfFiles(confFile)
	if err != nil {
		return nil, fmt.Errorf("ld.so.conf: %w", err)
	}
	l := &loader{cache: c, confDirs: dirs, objs: map[string]*elfObject{}, probed: map[string]bool{cacheFile: true}}
	for _, f := range files {
		l.probed[f] = true
	}
	return l, nil
}

func (l *loader) read(path string) (*elfObject, error) {
	if o, ok := l.objs[path]; ok {
		return o, nil
	}
	l.probed[path] = true
	o, err := readELF(path)
	if err != nil {
		return nil, err
	}
	l.objs[path] = o
	return o, nil
}

// multiarch is Debian's triplet for a class and machine: the folder name
// under /lib and /usr/lib that holds its libraries.
func multiarch(c elf.Class, m elf.Machine) string {
	switch {
	case m == elf.EM_X86_64 && c == elf.ELFCLASS64:
		return "x86_64-linux-gnu"
	case m == elf.EM_X86_64 && c == elf.ELFCLASS32:
		return "x86_64-linux-gnux32"
	case m == elf.EM_386:
		return "i386-linux-gnu"
	case m == elf.EM_AARCH64:
		return "aarch64-linux-gnu"
	case m == elf.EM_ARM:
		return "arm-linux-gnueabihf"
	case m == elf.EM_RISCV && c == elf.ELFCLASS64:
		return "riscv64-linux-gnu"
	case m == elf.EM_PPC64:
		return "powerpc64le-linux-gnu"
	case m == elf.EM_S390:
		return "s390x-linux-gnu"
	}
	return ""
}

// platform is what $PLATFORM expands to: the kernel's AT_PLATFORM string
// for a process of this class and machine.
func platform(c elf.Class, m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		if c == elf.ELFCLASS32 {
			return "i686"
		}
		return "x86_64"
	case elf.EM_386:
		return "i686"
	case elf.EM_AARCH64:
		return "aarch64"
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), "EM_"))
}

// libDir is what $LIB expands to. Debian's glibc is built with the
// multiarch folder as its library folder ("lib/x86_64-linux-gnu"); other
// distributions use lib64 for 64-bit and lib for 32-bit objects.
func libDir(c elf.Class, m elf.Machine) string {
	if t := multiarch(c, m); t != "" {
		if fi, err := os.Stat("/lib/" + t); err == nil && fi.IsDir() {
			return "lib/" + t
		}
	}
	if c == elf.ELFCLASS64 {
		return "lib64"
	}
	return "lib"
}

// defaultDirs are ld.so's trusted folders, searched last.
func defaultDirs(c elf.Class, m elf.Machine) []string {
	var dirs []string
	if t := multiarch(c, m); t != "" {
		dirs = append(dirs, "/lib/"+t, "/usr/lib/"+t)
	}
	if c == elf.ELFCLASS64 {
		dirs = append(dirs, "/lib64", "/usr/lib64")
	} else {
		dirs = append(dirs, "/lib32", "/usr/lib32")
	}
	return append(dirs, "/lib", "/usr/lib")
}

// expand replaces the dynamic string tokens of an rpath entry (ld.so(8):
// $ORIGIN, $LIB, $PLATFORM, also in the ${NAME} form). origin is the folder
// of the object whose DT_RPATH or DT_RUNPATH it is.
func expand(s, origin string, c elf.Class, m elf.Machine) string {
	if !strings.Contains(s, "$") {
		return s
	}
	r := strings.NewReplacer(
		"${ORIGIN}", origin, "$ORIGIN", origin,
		"${LIB}", libDir(c, m), "$LIB", libDir(c, m),
		"${PLATFORM}", platform(c, m), "$PLATFORM", platform(c, m),
	)
	return r.Replace(s)
}

// loaded is one object of a closure: the path where ld.so finds it and, for
// searching its own needs, the DT_RPATH folders of the chain that loaded it.
type loaded struct {
	path    string
	obj     *elfObject
	inherit []string // expanded DT_RPATH of the loaders, nearest first
}

// closure lists the path of every object the ELF file at path needs to run:
// its interpreter and all shared libraries, transitively, each as the path
// ld.so opens (which may be a symlink). want is nil for a program; for an
// object that is dlopen'ed (python's extension modules, which have no
// interpreter) it is the program that loads it, whose class and machine the
// object and its libraries must have. $ORIGIN of the top object is the
// folder of its real path, as the kernel gives ld.so for a program.
func (l *loader) closure(path string, want *elfObject) ([]string, *elfObject, error) {
	top, err := l.read(path)
	if err != nil {
		return nil, nil, err
	}
	if want == nil {
		want = top
	}
	if top.class != want.class || top.machine != want.machine {
		return nil, nil, fmt.Errorf("%s is %s, want %s", path, top.arch(), want.arch())
	}
	var out []string
	byName := map[string]bool{} // names (and basenames) already loaded
	if top.interp != "" {
		io, err := l.read(top.interp)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: interpreter %s: %w", path, top.interp, err)
		}
		if io.class != top.class || io.machine != top.machine {
			return nil, nil, fmt.Errorf("%s: interpreter %s is %s, the program is %s", path, top.interp, io.arch(), top.arch())
		}
		out = append(out, top.interp)
		byName[filepath.Base(top.interp)] = true
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, nil, err
	}
	queue := []loaded{{path: path, obj: top}}
	topOrigin := filepath.Dir(real)
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		origin := filepath.Dir(cur.path)
		if cur.path == path {
			origin = topOrigin
		}
		var own []string
		for _, d := range cur.obj.rpath {
			own = append(own, expand(d, origin, top.class, top.machine))
		}
		var runpath []string
		for _, d := range cur.obj.runpath {
			runpath = append(runpath, expand(d, origin, top.class, top.machine))
		}
		// A child inherits this object's DT_RPATH chain (ld.so walks
		// l_loader up to the executable).
		chain := append(append([]string(nil), own...), cur.inherit...)
		for _, name := range cur.obj.needed {
			if byName[name] {
				continue
			}
			var search []string
			if len(runpath) == 0 {
				search = chain
			}
			p, obj, err := l.find(name, expand(name, origin, top.class, top.machine), search, runpath, top)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %s (needed by %s): %w", path, name, cur.path, err)
			}
			byName[name] = true
			if byName[p] {
				continue
			}
			byName[p] = true
			out = append(out, p)
			queue = append(queue, loaded{path: p, obj: obj, inherit: chain})
		}
	}
	return out, top, nil
}

// find looks for one DT_NEEDED name.
func (l *loader) find(name, expanded string, rpath, runpath []string, want *elfObject) (string, *elfObject, error) {
	var mismatch []string
	try := func(p string) (*elfObject, bool) {
		l.probed[filepath.Dir(p)] = true
		if _, err := os.Stat(p); err != nil {
			return nil, false
		}
		o, err := l.read(p)
		if err != nil {
			return nil, false
		}
		if o.class != want.class || o.machine != want.machine {
			mismatch = append(mismatch, p+" ("+o.arch()+")")
			return nil, false
		}
		return o, true
	}
	if strings.Contains(name, "/") {
		if o, ok := try(expanded); ok {
			return expanded, o, nil
		}
	} else {
		for _, dirs := range [][]string{rpath, runpath} {
			for _, d := range dirs {
				p := filepath.Join(d, name)
				if o, ok := try(p); ok {
					return p, o, nil
				}
			}
		}
		for _, p := range l.cache[name] {
			if o, ok := try(p); ok {
				return p, o, nil
			}
		}
		for _, dirs := range [][]string{l.confDirs, defaultDirs(want.class, want.machine)} {
			for _, d := range dirs {
				p := filepath.Join(d, name)
				if o, ok := try(p); ok {
					return p, o, nil
				}
			}
		}
	}
	if len(mismatch) > 0 {
		return "", nil, fmt.Errorf("found only %s, want %s", strings.Join(mismatch, ", "), want.arch())
	}
	return "", nil, errors.New("not found in rpath, runpath, ld.so.cache, ld.so.conf or the default folders")
}
