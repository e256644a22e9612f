//go:build linux

package fs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	imgdrv "hutch/drivers/image"
	"hutch/plan"
)

// kind is what an entry of a layer is.
type kind uint8

const (
	kDir kind = iota + 1
	kFile
	kSymlink
	kHardlink // another name of an earlier kFile entry (Target is its path)
	kInline
)

func (k kind) String() string {
	return [...]string{"", "dir", "file", "symlink", "hardlink", "inline"}[k]
}

// entry is one object of a layer: its path inside the rootfs and where it
// comes from. The host fields are the source file's identity, which the
// layer digest covers.
type entry struct {
	Path   string `json:"path"` // clean, absolute, inside the rootfs
	Kind   kind   `json:"kind"`
	Src    string `json:"src,omitempty"` // host path (kFile, kDir from the host)
	Mode   uint32 `json:"mode"`          // permission bits with setuid, setgid, sticky
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Dev    uint64 `json:"dev,omitempty"`
	Ino    uint64 `json:"ino,omitempty"`
	Size   int64  `json:"size,omitempty"`
	Mtime  int64  `json:"mtime,omitempty"` // ns
	Target string `json:"target,omitempty"`
	Digest string `json:"digest,omitempty"` // kInline: sha256 of Content
	// Content of a kInline entry; the digest covers Digest instead.
	Content []byte `json:"-"`
	// Mount is set on the recipe's Dirs: they must end up plain folders.
	Mount bool `json:"mount,omitempty"`
}

// tree is the resolved recipe: entries in the order they are made.
type tree struct {
	entries []*entry
	at      map[string]int
	links   map[[2]uint64]string // (dev, ino) of multi-link files -> first path
}

func newTree() *tree { return &tree{at: map[string]int{}, links: map[[2]uint64]string{}} }

// add puts e at its path. A later entry replaces an earlier one at the same
// path, in its place, except that two folders merge (the later mode wins).
func (t *tree) add(e *entry) {
	if i, ok := t.at[e.Path]; ok {
		old := t.entries[i]
		if old.Kind == kDir && e.Kind == kDir && e.Src == "" && old.Src != "" && !e.Mount {
			return // an implied parent does not override a host folder
		}
		e.Mount = e.Mount || (old.Mount && e.Kind == kDir)
		t.entries[i] = e
		return
	}
	t.at[e.Path] = len(t.entries)
	t.entries = append(t.entries, e)
}

func (t *tree) has(p string) bool { _, ok := t.at[p]; return ok }

// statEntry makes the entry of host file src at path p from its lstat.
func (t *tree) statEntry(src, p string, fi fs.FileInfo) (*entry, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("%s: no stat", src)
	}
	e := &entry{Path: p, Src: src, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		e.Kind = kDir
	case syscall.S_IFREG:
		e.Kind, e.Dev, e.Ino, e.Size, e.Mtime = kFile, st.Dev, st.Ino, st.Size, st.Mtim.Nano()
		if st.Nlink > 1 {
			id := [2]uint64{st.Dev, st.Ino}
			if first, ok := t.links[id]; ok && first != p {
				e.Kind, e.Target = kHardlink, first
			} else {
				t.links[id] = p
			}
		}
	case syscall.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return nil, err
		}
		e.Kind, e.Target, e.Mtime = kSymlink, target, st.Mtim.Nano()
	default:
		return nil, fmt.Errorf("%s is a %s: hutch copies only files, folders and symlinks into a rootfs", src, fileType(st.Mode))
	}
	return e, nil
}

func fileType(m uint32) string {
	switch m & syscall.S_IFMT {
	case syscall.S_IFCHR:
		return "character device"
	case syscall.S_IFBLK:
		return "block device"
	case syscall.S_IFIFO:
		return "fifo"
	case syscall.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("file of type %#o", m&syscall.S_IFMT)
}

// addHostPath makes host path p exist at the same path in the rootfs as it
// does on the host: each symlink met on the way (a parent such as Debian's
// /bin -> usr/bin, or the file itself, such as
// /lib64/ld-linux-x86-64.so.2 -> ...) is kept as a symlink and its target
// is followed and added too; folders on the way keep their host mode and
// owner. It returns the physical path reached (no symlink in it) and its
// lstat.
func (t *tree) addHostPath(p string) (string, fs.FileInfo, error) {
	p = filepath.Clean(p)
	if !filepath.IsAbs(p) {
		return "", nil, fmt.Errorf("%s: not an absolute path", p)
	}
	for hops := 0; hops < 40; hops++ {
		restart := false
		parts := strings.Split(p, "/")[1:]
		cur := "/"
		for i, name := range parts {
			next := path.Join(cur, name)
			fi, err := os.Lstat(next)
			if err != nil {
				return "", nil, err
			}
			if fi.Mode()&fs.ModeSymlink != 0 {
				e, err := t.statEntry(next, next, fi)
				if err != nil {
					return "", nil, err
				}
				t.add(e)
				target := e.Target
				if !filepath.IsAbs(target) {
					target = filepath.Join(cur, target)
				}
				p = filepath.Join(append([]string{target}, parts[i+1:]...)...)
				restart = true
				break
			}
			if i == len(parts)-1 {
				e, err := t.statEntry(next, next, fi)
				if err != nil {
					return "", nil, err
				}
				t.add(e)
				return next, fi, nil
			}
			if !t.has(next) {
				e, err := t.statEntry(next, next, fi)
				if err != nil {
					return "", nil, err
				}
				t.add(e)
			}
			cur = next
		}
		if !restart {
			return "/", nil, nil
		}
	}
	return "", nil, fmt.Errorf("%s: too many levels of symbolic links", p)
}

// walkOpts says what a tree walk leaves out and how it treats symlinks
// that lead out of the tree.
type walkOpts struct {
	skipDir func(rel, name string) bool
	// skipFile leaves out files (not folders) it returns true for.
	skipFile func(name string) bool
	// followOut adds the targets of symlinks that point out of the tree
	// (python's stdlib has /usr/lib/python3.11/sitecustomize.py ->
	// /etc/python3.11/sitecustomize.py).
	followOut bool
}

// addTree copies host folder src to dst in the rootfs, in lexical order.
func (t *tree) addTree(src, dst string, o walkOpts) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && rel != "." && o.skipDir != nil && o.skipDir(rel, d.Name()) {
			return filepath.SkipDir
		}
		if !d.IsDir() && o.skipFile != nil && o.skipFile(d.Name()) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e, err := t.statEntry(p, path.Join(dst, filepath.ToSlash(rel)), fi)
		if err != nil {
			return err
		}
		t.add(e)
		if e.Kind == kSymlink && o.followOut {
			target := e.Target
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			if !within(target, src) {
				if err := t.addHostFollow(target, o); err != nil {
					return fmt.Errorf("%s -> %s: %w", p, e.Target, err)
				}
			}
		}
		return nil
	})
}

// addHostFollow adds a host path and, when it is a folder, its tree.
func (t *tree) addHostFollow(p string, o walkOpts) error {
	real, fi, err := t.addHostPath(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a dangling link stays dangling, as on the host
	}
	if err != nil {
		return err
	}
	if fi != nil && fi.IsDir() {
		return t.addTree(real, real, walkOpts{skipDir: o.skipDir})
	}
	return nil
}

func within(p, dir string) bool {
	p, dir = filepath.Clean(p), filepath.Clean(dir)
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// inRoot cleans a path of the recipe into an absolute path inside the
// rootfs: ".." cannot climb above "/". The writes resolve it inside the
// root again; this only gives each path one spelling.
func inRoot(p string) string { return path.Clean("/" + p) }

// resolver turns recipes into trees, with what it learnt of the host kept for
// the life of the driver (one hutch command).
type resolver struct {
	ld       *loader
	ldErr    error
	pathEnv  string
	pythons  map[string]*pythonInfo // by the name the recipe gives (python.go)
	ldLoaded bool
	// probed holds the paths the python reading looked at (landmarks,
	// pyvenv.cfg), present or not: witnesses of a kept resolution.
	probed map[string]bool
	// ldCache and ldConf are the host files the loader reads.
	ldCache, ldConf string
	// cacheDir keeps resolutions between commands (quick.go); "" keeps
	// none.
	cacheDir string
	// images holds the real folders of the images read (onto.go), by
	// their layers.
	images map[string]map[string]imgdrv.Folder
}

func newResolver() *resolver {
	pe := os.Getenv("PATH")
	if pe == "" {
		pe = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return &resolver{pathEnv: pe, pythons: map[string]*pythonInfo{}, probed: map[string]bool{},
		ldCache: "/etc/ld.so.cache", ldConf: "/etc/ld.so.conf"}
}

func (r *resolver) loader() (*loader, error) {
	if !r.ldLoaded {
		r.ld, r.ldErr = newLoader(r.ldCache, r.ldConf)
		r.ldLoaded = true
	}
	return r.ld, r.ldErr
}

// lookPath finds a binary named without a slash on PATH, as execvp does.
func (r *resolver) lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) {
			return "", fmt.Errorf("%s: binaries are absolute paths or names looked up on PATH", name)
		}
		return name, nil
	}
	for _, d := range filepath.SplitList(r.pathEnv) {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found on PATH (%s)", name, r.pathEnv)
}

// resolve makes the tree of a recipe, in this order: binaries with their
// closures, the python interpreter and its standard library, copies, inline
// files, folders. A later entry at the same path replaces an earlier one.
// It only reads the host: no program of the recipe is run.
func (r *resolver) resolve(ctx context.Context, rf *plan.Rootfs) (*tree, error) {
	t := newTree()
	for _, b := range rf.Binaries {
		if err := r.addBinary(t, b); err != nil {
			return nil, fmt.Errorf("binary %s: %w", b, err)
		}
	}
	if rf.Python != "" {
		if err := r.addPython(t, rf.Python); err != nil {
			return nil, fmt.Errorf("python %s: %w", rf.Python, err)
		}
	}
	for _, c := range rf.Copies {
		if err := r.addCopy(t, c); err != nil {
			return nil, fmt.Errorf("copy %s to %s: %w", c.From, c.To, err)
		}
	}
	for _, f := range rf.Files {
		t.add(&entry{Path: inRoot(f.Path), Kind: kInline, Mode: f.Mode & 0o7777,
			Content: []byte(f.Content), Digest: f.Digest})
	}
	for _, d := range rf.Dirs {
		p := inRoot(d.Path)
		if i, ok := t.at[p]; ok && t.entries[i].Kind != kDir {
			return nil, fmt.Errorf("folder %s: the recipe also makes it a %s; mount points and folders stay plain folders", d.Path, t.entries[i].Kind)
		}
		t.add(&entry{Path: p, Kind: kDir, Mode: d.Mode & 0o7777, Mount: true})
	}
	// The runtime mounts proc, sysfs and a tmpfs for /dev over these; it
	// must find plain folders there, whatever the recipe says.
	for _, d := range mountPoints {
		if i, ok := t.at[d.Path]; ok {
			if t.entries[i].Kind != kDir {
				return nil, fmt.Errorf("mount point %s: the recipe makes it a %s; it must stay a plain folder", d.Path, t.entries[i].Kind)
			}
			t.entries[i].Mount = true
			continue
		}
		t.add(&entry{Path: d.Path, Kind: kDir, Mode: d.Mode, Mount: true})
	}
	if ri := rf.Image; ri != nil {
		folders := func() (map[string]imgdrv.Folder, error) { return r.imageFolders(ri) }
		if err := t.ontoImage(ri.Ref, folders, func(p string) { r.probed[p] = true }); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// mountPoints are made in every rootfs (plan.Build lists them too).
var mountPoints = []plan.Dir{{Path: "/dev", Mode: 0o755}, {Path: "/proc", Mode: 0o555}, {Path: "/sys", Mode: 0o555}, {Path: "/tmp", Mode: 0o1777}}

// addBinary adds an executable and everything ld.so loads for it.
func (r *resolver) addBinary(t *tree, name string) error {
	p, err := r.lookPath(name)
	if err != nil {
		return err
	}
	ld, err := r.loader()
	if err != nil {
		return err
	}
	if fi, err := os.Stat(p); err != nil {
		return err
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	if _, err := ld.read(p); errors.Is(err, errNotELF) {
		return r.scriptError(p)
	} else if err != nil {
		return err
	}
	libs, _, err := ld.closure(p, nil)
	if err != nil {
		return err
	}
	for _, q := range append([]string{p}, libs...) {
		if _, _, err := t.addHostPath(q); err != nil {
			return err
		}
	}
	return nil
}

// scriptError explains why a script cannot be a binary of the rootfs: the
// container would need its interpreter, and a wrapper such as pyenv's shim
// runs programs the container does not have. It reads the script's #! line
// and never runs it.
func (r *resolver) scriptError(p string) error {
	msg := notELF(p)
	interp, arg := scriptInterp(p)
	if interp == "" {
		return errors.New(msg)
	}
	if strings.HasPrefix(filepath.Base(p), "python") {
		return fmt.Errorf("%s; for python, name the interpreter itself in the rootfs python field, which copies it with its standard library: %s", msg, r.pythonAdvice(p))
	}
	real := interp
	if filepath.Base(interp) == "env" && arg != "" {
		if q, err := r.lookPath(strings.Fields(arg)[0]); err == nil {
			real = q
		}
	}
	if q, err := filepath.EvalSymlinks(real); err == nil {
		real = q
	}
	return fmt.Errorf("%s: list its interpreter %s as a binary and copy the script with copies", msg, real)
}

// addCopy adds a host file or folder. From itself is followed when it is a
// symlink (as `cp -aH`); symlinks inside a folder stay symlinks.
func (r *resolver) addCopy(t *tree, c plan.Copy) error {
	if !filepath.IsAbs(c.From) {
		return fmt.Errorf("%s: not an absolute path", c.From)
	}
	src, err := filepath.EvalSymlinks(c.From)
	if err != nil {
		return err
	}
	to := inRoot(c.To)
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return t.addTree(src, to, walkOpts{})
	}
	e, err := t.statEntry(src, to, fi)
	if err != nil {
		return err
	}
	t.add(e)
	return nil
}

// stdlibSkip leaves out of the standard library what the interpreter does
// not need to run programs: the regression tests, third-party packages, and
// the build configuration of C extensions (config-3.11-*, with the static
// libpython). The bytecode caches (__pycache__) stay: without them python
// compiles every module it imports on every start of every container
// (about 150 ms before the seed's server answers); copies keep the source
// files' mtimes, which is what python checks a .pyc against.
func stdlibSkip(rel, name string) bool {
	switch name {
	case "test", "tests", "idle_test", "site-packages", "dist-packages":
		return true
	}
	return !strings.Contains(rel, "/") && strings.HasPrefix(name, "config-")
}

// stdlibSkipFile leaves out the bytecode of `python -O` and `-OO`
// (*.opt-1.pyc, *.opt-2.pyc), which a plain interpreter never reads.
func stdlibSkipFile(name string) bool {
	return strings.HasSuffix(name, ".pyc") && strings.Contains(name, ".opt-")
}

// addPython adds the real interpreter with its closure, its standard library
// and the closures of its extension modules (lib-dynload), and makes the
// name the recipe gives resolvable at /usr/bin/NAME.
func (r *resolver) addPython(t *tree, name string) error {
	pi, err := r.findPython(name)
	if err != nil {
		return err
	}
	if err := r.addBinary(t, pi.Executable); err != nil {
		return fmt.Errorf("its executable %s: %w", pi.Executable, err)
	}
	ld, _ := r.loader()
	exe, err := ld.read(pi.Executable)
	if err != nil {
		return err
	}
	dirs := []string{pi.Stdlib}
	if pi.PlatStdlib != "" && pi.PlatStdlib != pi.Stdlib {
		dirs = append(dirs, pi.PlatStdlib)
	}
	for _, d := range pi.Dynload {
		if !within(d, pi.Stdlib) && !within(d, pi.PlatStdlib) {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		real, fi, err := t.addHostPath(d)
		if err != nil {
			return fmt.Errorf("standard library %s: %w", d, err)
		}
		if fi == nil || !fi.IsDir() {
			return fmt.Errorf("standard library %s: not a folder", d)
		}
		if err := t.addTree(real, real, walkOpts{skipDir: stdlibSkip, skipFile: stdlibSkipFile, followOut: true}); err != nil {
			return fmt.Errorf("standard library %s: %w", d, err)
		}
	}
	// Extension modules are dlopen'ed by the interpreter: their libraries
	// (libz, libssl, libffi...) must be there too.
	for _, d := range pi.Dynload {
		ents, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("lib-dynload %s: %w", d, err)
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
		for _, e := range ents {
			if !e.Type().IsRegular() || !strings.Contains(e.Name(), ".so") {
				continue
			}
			libs, _, err := ld.closure(filepath.Join(d, e.Name()), exe)
			if errors.Is(err, errNotELF) {
				continue
			}
			if err != nil {
				return fmt.Errorf("extension module: %w", err)
			}
			for _, q := range libs {
				if _, _, err := t.addHostPath(q); err != nil {
					return err
				}
			}
		}
	}
	// The container finds the interpreter by the name the recipe gives.
	link := path.Join("/usr/bin", filepath.Base(name))
	if !t.has(link) && !t.has(inRoot("/bin/"+filepath.Base(name))) {
		if !t.has("/usr/bin") {
			t.add(&entry{Path: "/usr/bin", Kind: kDir, Mode: 0o755})
		}
		t.add(&entry{Path: link, Kind: kSymlink, Target: pi.Executable})
	}
	return nil
}
