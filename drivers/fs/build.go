//go:build linux

package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hutch/internal/progress"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"hutch/plan"
)

// layerFormat is part of every digest: a change in how layers are made
// gives every recipe a new layer.
const layerFormat = "hutch-layer-1"

// digest is the layer digest of a resolved recipe: sha256 of the recipe
// (what it asks for) and of every entry with the identity of its source
// (device, inode, size, modification time in ns, mode, owner; the content
// hash for inline files). Folders count by mode and owner only: a file
// added to or removed from a copied folder shows as an entry anyway.
func (t *tree) digest(rf *plan.Rootfs) string {
	type file struct {
		Path   string `json:"path"`
		Mode   uint32 `json:"mode"`
		Digest string `json:"digest"`
	}
	recipe := struct {
		Format   string      `json:"format"`
		Binaries []string    `json:"binaries"`
		Python   string      `json:"python"`
		Copies   []plan.Copy `json:"copies"`
		Files    []file      `json:"files"`
		Dirs     []plan.Dir  `json:"dirs"`
	}{Format: layerFormat, Binaries: rf.Binaries, Python: rf.Python, Copies: rf.Copies, Dirs: rf.Dirs}
	for _, f := range rf.Files {
		sum := sha256.Sum256([]byte(f.Content))
		recipe.Files = append(recipe.Files, file{f.Path, f.Mode, hex.EncodeToString(sum[:])})
	}
	h := sha256.New()
	e := json.NewEncoder(h)
	e.Encode(recipe)
	for _, en := range t.entries {
		c := *en
		if c.Kind == kInline {
			sum := sha256.Sum256(en.Content)
			c.Digest = hex.EncodeToString(sum[:])
		}
		e.Encode(&c)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// testHookFileWritten, when set, runs after each regular file a build
// writes, with the count so far. Tests use it to stop a build midway.
var testHookFileWritten func(n int64)

// testHookBeforeFiles, when set, runs after folders and symlinks are made
// and before files are written, with the folder being built. Tests use it
// to swap a symlink into the tree as an attacker would.
var testHookBeforeFiles func(dir string)

// writeTree makes the entries of t inside folder dir, which must exist:
// first folders and symlinks in order (a parent symlink such as /bin ->
// usr/bin must be there before the files under it), then regular and
// inline files in parallel, one worker per core (copying is mostly waiting
// for the disk and the kernel's copy), then hard links, then the folders'
// modes, owners and times, deepest first, so that writing into a folder
// does not change its time again.
func writeTree(ctx context.Context, dir string, t *tree) error {
	r, err := openRoot(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	var files []*entry
	for _, e := range t.entries {
		var err error
		switch e.Kind {
		case kDir:
			err = r.mkdir(e.Path, 0o755)
		case kSymlink:
			err = r.symlink(e.Path, e.Target, e.UID, e.GID, e.Mtime)
		case kFile, kInline:
			files = append(files, e)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", e.Kind, e.Path, err)
		}
	}
	if testHookBeforeFiles != nil {
		testHookBeforeFiles(dir)
	}
	if err := writeFiles(ctx, r, files); err != nil {
		return err
	}
	for _, e := range t.entries {
		if e.Kind == kHardlink {
			if err := r.link(e.Target, e.Path); err != nil {
				return fmt.Errorf("hard link %s to %s: %w", e.Path, e.Target, err)
			}
		}
	}
	for i := len(t.entries) - 1; i >= 0; i-- {
		e := t.entries[i]
		if e.Kind != kDir {
			continue
		}
		var mtime int64
		if e.Src != "" {
			var st unix.Stat_t
			if err := unix.Lstat(e.Src, &st); err == nil {
				mtime = st.Mtim.Nano()
			}
		}
		if err := r.dirMeta(e.Path, e.Mode, e.UID, e.GID, mtime); err != nil {
			return fmt.Errorf("folder %s: %w", e.Path, err)
		}
	}
	return nil
}

func writeFiles(ctx context.Context, r *root, files []*entry) error {
	workers := runtime.NumCPU()
	if workers > len(files) {
		workers = len(files)
	}
	var (
		next    atomic.Int64
		written atomic.Int64
		bytes   atomic.Int64
		wg      sync.WaitGroup
		once    sync.Once
		first   error
		failed  atomic.Bool
		total   int64
	)
	meter := progress.Enabled(ctx)
	for _, e := range files {
		total += e.Size
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := next.Add(1) - 1
				if i >= int64(len(files)) {
					return
				}
				e := files[i]
				err := ctx.Err()
				if err == nil {
					err = writeFile(r, e)
				}
				if err != nil {
					once.Do(func() { first = fmt.Errorf("%s %s: %w", e.Kind, e.Path, err) })
					failed.Store(true)
					return
				}
				n := written.Add(1)
				if meter {
					b := bytes.Add(e.Size)
					progress.Report(ctx, "%d of %d files, %s of %s copied", n, len(files), progress.Bytes(b), progress.Bytes(total))
				}
				if testHookFileWritten != nil {
					testHookFileWritten(n)
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func writeFile(r *root, e *entry) error {
	f, err := r.create(e.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	if e.Kind == kInline {
		if _, err := f.Write(e.Content); err != nil {
			return err
		}
		return setMeta(int(f.Fd()), e.Mode, 0, 0, 0)
	}
	src, err := os.OpenFile(e.Src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer src.Close()
	// The layer's digest names the file as it was resolved: refuse a file
	// that changed since, so a layer never holds content its digest does
	// not describe.
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	if st.Dev != e.Dev || st.Ino != e.Ino || st.Size != e.Size || st.Mtim.Nano() != e.Mtime {
		return fmt.Errorf("%s changed on the host while the layer was built; apply again", e.Src)
	}
	if err := copyData(f, src, e.Size); err != nil {
		return err
	}
	if err := setOwnerMode(int(f.Fd()), e.Mode, e.UID, e.GID); err != nil {
		return err
	}
	if err := copyXattrs(int(f.Fd()), int(src.Fd())); err != nil {
		return err
	}
	return setTimes(int(f.Fd()), e.Mtime)
}
