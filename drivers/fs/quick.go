//go:build linux

package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"hutch/plan"
)

// A kept resolution: what makes a no-op apply cheap.
//
// Resolving a recipe (ELF closures, a walk of python's standard library,
// an lstat of every source) costs about 9 ms for the web server, and every
// apply observes every rootfs. Yet the digest only changes when one of the
// host files the resolution looked at changes. So after a resolution the
// driver keeps, under <stateRoot>/cache/resolved/<recipe key>, the digest
// and the list of every path it depended on: each source file, folder and
// symlink of the tree, every folder the ELF loader looked for a library in
// and every file it read, the ld.so cache and configuration, every landmark
// and pyvenv.cfg the python reading looked for (python.go). The next
// Observe lstat(2)s those paths (in parallel) and hashes what the kernel
// says of each (device, inode, mode, owner, size, mtime and ctime in ns;
// or that it is absent). When the hash is the kept one, nothing the
// resolution read has changed (a file added to or removed from a folder
// changes the folder's mtime; a rewrite changes the file's mtime and
// ctime, even when the mtime is set back), and the kept digest is the one a
// new resolution would give. Otherwise the recipe is resolved again.
//
// A file changed while it was being resolved could leave the kept hash
// describing the new file and the digest the old one. As git does for its
// "racily clean" index entries, a resolution is kept only when every path's
// ctime is older than the resolution's start by more than the timestamp
// granularity of the file system; otherwise the next Observe resolves again.
//
// Not kept: recipes whose paths hold a newline. The kept files are written
// only by a driver that may write (New): `hutch plan` (NewReadOnly) reads
// them and writes none.

const (
	keptFormat = "hutch-resolved-1"
	// racyMargin covers coarse file timestamps (the kernel stamps files
	// with a clock that ticks every 1-10 ms).
	racyMargin = 100 * time.Millisecond
)

// keptDigest is the kept resolution of one recipe, as read from its file.
type keptDigest struct {
	digest string
	sum    string // hex of the identity hash of paths
	paths  []string
}

// quickState is the driver's memory of kept resolutions and of checks in
// flight, so that twenty containers of one recipe observed at once share
// one check.
type quickState struct {
	mu     sync.Mutex
	kept   map[string]*keptDigest
	checks map[string]*quickCheck
}

type quickCheck struct {
	done   chan struct{}
	digest string
	ok     bool
}

// recipeKey names a recipe independently of its container: what it asks
// for, the PATH names are looked up on, the layer format and, over an
// image, the image's layers (onto.go).
func (r *resolver) recipeKey(rf *plan.Rootfs) string {
	b, _ := json.Marshal(struct {
		Format   string
		Path     string
		Binaries []string
		Python   string
		Copies   []plan.Copy
		Files    []plan.InlineFile
		Dirs     []plan.Dir
	}{layerFormat + "/" + keptFormat, r.pathEnv, rf.Binaries, rf.Python, rf.Copies, rf.Files, rf.Dirs})
	if rf.Image != nil {
		// Over an image, the layer depends on the image's folders too
		// (onto.go): its layers are part of the key.
		b = append(b, "\x00image "+strings.Join(rf.Image.Layers, ",")...)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (r *resolver) keptFile(key string) string {
	return filepath.Join(r.cacheDir, "resolved", key)
}

// lookups hashes what the resolution found by name rather than by path:
// binaries and the python interpreter on PATH (the files they lead to are
// witnesses). ok is false when the recipe cannot be kept.
func (r *resolver) lookups(rf *plan.Rootfs) (sum []byte, ok bool) {
	h := sha256.New()
	for _, b := range rf.Binaries {
		if strings.Contains(b, "/") {
			continue
		}
		p, err := r.lookPath(b)
		fmt.Fprintf(h, "bin %s %s %v\x00", b, p, err != nil)
	}
	if rf.Python != "" {
		p, err := r.lookPath(rf.Python)
		if err != nil {
			return nil, false
		}
		fmt.Fprintf(h, "python %s %s\x00", rf.Python, p)
	}
	return h.Sum(nil), true
}

// identities lstats paths, several at once, and returns the hash of what the
// kernel says of each and the newest ctime seen.
func identities(paths []string, lookups []byte) (string, time.Time) {
	const rec = 9 // dev ino mode uid gid size mtime ctime present
	vals := make([]uint64, rec*len(paths))
	workers := min(runtime.NumCPU(), 4, max(1, len(paths)/128))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var st unix.Stat_t
			for i := w; i < len(paths); i += workers {
				v := vals[i*rec : (i+1)*rec]
				if unix.Lstat(paths[i], &st) != nil {
					continue
				}
				v[0], v[1], v[2], v[3], v[4] = st.Dev, st.Ino, uint64(st.Mode), uint64(st.Uid), uint64(st.Gid)
				v[5], v[6], v[7], v[8] = uint64(st.Size), uint64(st.Mtim.Nano()), uint64(st.Ctim.Nano()), 1
			}
		}(w)
	}
	wg.Wait()
	h := sha256.New()
	h.Write(lookups)
	var newest int64
	buf := make([]byte, 0, 8*rec)
	for i, p := range paths {
		h.Write([]byte(p))
		buf = buf[:0]
		for _, x := range vals[i*rec : (i+1)*rec] {
			buf = binary.LittleEndian.AppendUint64(buf, x)
		}
		h.Write(buf)
		newest = max(newest, int64(vals[i*rec+7]))
	}
	return hex.EncodeToString(h.Sum(nil)), time.Unix(0, newest)
}

// witnesses lists the paths a resolution of t depended on, sorted. The
// caller holds d.mu (the loader is shared).
func (r *resolver) witnesses(t *tree) []string {
	set := map[string]bool{r.ldCache: true, r.ldConf: true}
	for _, e := range t.entries {
		if e.Src != "" {
			set[e.Src] = true
		}
	}
	if r.ld != nil {
		for p := range r.ld.probed {
			set[p] = true
		}
	}
	for p := range r.probed {
		set[p] = true
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// keep writes the kept resolution of rf after a resolution that started at
// start. The caller holds d.mu. A failure only costs the next Observe a
// resolution.
func (d *Driver) keep(rf *plan.Rootfs, t *tree, digest string, start time.Time) {
	r := d.res
	if r.cacheDir == "" || d.readOnly {
		return
	}
	lk, ok := r.lookups(rf)
	if !ok {
		return
	}
	paths := r.witnesses(t)
	for _, p := range paths {
		if strings.ContainsRune(p, '\n') {
			return
		}
	}
	sum, newest := identities(paths, lk)
	if !newest.Before(start.Add(-racyMargin)) {
		return // racily clean: something changed just now; check it all again next time
	}
	key := r.recipeKey(rf)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n%s\n%s\n", keptFormat, digest, sum)
	for _, p := range paths {
		b.WriteString(p)
		b.WriteByte('\n')
	}
	f := r.keptFile(key)
	if os.MkdirAll(filepath.Dir(f), 0o700) != nil {
		return
	}
	tmp := f + ".tmp" + fmt.Sprint(os.Getpid())
	if os.WriteFile(tmp, b.Bytes(), 0o600) != nil {
		os.Remove(tmp)
		return
	}
	if os.Rename(tmp, f) != nil {
		os.Remove(tmp)
		return
	}
	d.quick.mu.Lock()
	if d.quick.kept == nil {
		d.quick.kept = map[string]*keptDigest{}
	}
	d.quick.kept[key] = &keptDigest{digest: digest, sum: sum, paths: paths}
	d.quick.mu.Unlock()
}

func readKept(file string) (*keptDigest, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) < 3 || lines[0] != keptFormat || !strings.HasPrefix(lines[1], "sha256:") || len(lines[2]) != 64 {
		return nil, errors.New("not a kept resolution")
	}
	return &keptDigest{digest: lines[1], sum: lines[2], paths: lines[3:]}, nil
}

// keptDigestOf returns the digest of rf's kept resolution when nothing it
// depended on has changed. Observes of one recipe that arrive while a check
// runs share its answer.
func (d *Driver) keptDigestOf(rf *plan.Rootfs) (string, bool) {
	r := d.res
	if r.cacheDir == "" {
		return "", false
	}
	key := r.recipeKey(rf)
	q := &d.quick
	q.mu.Lock()
	if c, ok := q.checks[key]; ok {
		q.mu.Unlock()
		<-c.done
		return c.digest, c.ok
	}
	c := &quickCheck{done: make(chan struct{})}
	if q.checks == nil {
		q.checks = map[string]*quickCheck{}
	}
	q.checks[key] = c
	k := q.kept[key]
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.checks, key)
		q.mu.Unlock()
		close(c.done)
	}()
	if k == nil {
		var err error
		if k, err = readKept(r.keptFile(key)); err != nil {
			return "", false
		}
	}
	d.mu.Lock() // the resolver's PATH lookups and python key
	lk, ok := r.lookups(rf)
	d.mu.Unlock()
	if !ok {
		return "", false
	}
	if sum, _ := identities(k.paths, lk); sum != k.sum {
		return "", false
	}
	q.mu.Lock()
	if q.kept == nil {
		q.kept = map[string]*keptDigest{}
	}
	q.kept[key] = k
	q.mu.Unlock()
	c.digest, c.ok = k.digest, true
	return k.digest, true
}

// digestOf is the layer digest of rf: the kept one when it still holds, else
// a new resolution's (which is then kept).
func (d *Driver) digestOf(ctx context.Context, rf *plan.Rootfs) (string, error) {
	if digest, ok := d.keptDigestOf(rf); ok {
		return digest, nil
	}
	_, digest, err := d.resolve(ctx, rf)
	return digest, err
}
