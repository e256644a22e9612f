//go:build linux

package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The layer cache lives in <stateRoot>/layers:
//
//	layers/<hex>             a complete layer, the tree itself (an overlay lowerdir)
//	layers/.tmp-<rand>       a layer being built
//	layers/.tmp-<rand>.lock  flock'ed by that build's process while it lives
//	layers/.lock             shared while a build or a mount needs a layer,
//	                         exclusive while gc removes layers
//
// A layer is built in a temporary folder, flushed to disk with syncfs(2) and
// renamed to its digest: rename(2) is atomic, so a folder named like a
// digest is always complete. A build that dies leaves its .tmp- folder, and
// the kernel drops the flock of its lock file with the process: the next
// build (or Delete, or gc) takes the lock without waiting and removes both.
// The lock file is made with O_TMPFILE, locked, and only then linked into
// the folder, so no other process ever sees it unlocked while its builder
// lives; the build folder is made after it.

const tmpPrefix = ".tmp-"

func (d *Driver) layersDir() string { return filepath.Join(d.stateRoot, "layers") }

// layerHex is the folder name of a digest "sha256:<hex>".
func layerHex(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 {
		return "", fmt.Errorf("layer digest %q: want sha256:<64 hex digits>", digest)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("layer digest %q: %w", digest, err)
	}
	return h, nil
}

func (d *Driver) layerDir(digest string) (string, error) {
	h, err := layerHex(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(d.layersDir(), h), nil
}

// lockLayers takes the cache lock (unix.LOCK_SH or unix.LOCK_EX) and
// returns its release.
func (d *Driver) lockLayers(how int) (func(), error) {
	if err := os.MkdirAll(d.layersDir(), 0o700); err != nil {
		return nil, fmt.Errorf("layer cache %s: %w", d.layersDir(), err)
	}
	p := filepath.Join(d.layersDir(), ".lock")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("layer cache lock %s: %w", p, err)
	}
	for {
		err = unix.Flock(fd, how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("layer cache lock %s: %w", p, err)
	}
	return func() { unix.Close(fd) }, nil
}

// cleanTemps removes the temporary folders of builds that died: a folder
// whose lock file is missing or can be locked at once has no living builder.
func (d *Driver) cleanTemps() ([]string, error) {
	ents, err := os.ReadDir(d.layersDir())
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, tmpPrefix) {
			continue
		}
		base := strings.TrimSuffix(name, ".lock")
		if base != name {
			if _, err := os.Lstat(filepath.Join(d.layersDir(), base)); err == nil {
				continue // handled with its folder
			}
		}
		dir := filepath.Join(d.layersDir(), base)
		lock := dir + ".lock"
		fd, err := unix.Open(lock, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err == nil {
			if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
				unix.Close(fd) // its build is running
				continue
			}
		} else if err != unix.ENOENT {
			continue
		}
		err = os.RemoveAll(dir)
		if err == nil {
			err = os.Remove(lock)
			if os.IsNotExist(err) {
				err = nil
			}
		}
		if fd >= 0 {
			unix.Close(fd)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove dead build %s: %w", dir, err))
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// lockedTemp makes the lock file of a new build, already locked, and
// returns the build folder's path and the lock's release.
func (d *Driver) lockedTemp() (string, func(), error) {
	fd, err := unix.Open(d.layersDir(), unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("lock file in %s: %w", d.layersDir(), err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return "", nil, fmt.Errorf("lock file in %s: %w", d.layersDir(), err)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(d.layersDir(), tmpPrefix+hex.EncodeToString(rnd[:]))
	// linkat of an O_TMPFILE descriptor through /proc/self/fd (AT_EMPTY_PATH
	// would need CAP_DAC_READ_SEARCH).
	if err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, tmp+".lock", unix.AT_SYMLINK_FOLLOW); err != nil {
		unix.Close(fd)
		return "", nil, fmt.Errorf("lock file %s.lock: %w", tmp, err)
	}
	return tmp, func() {
		os.Remove(tmp + ".lock")
		unix.Close(fd)
	}, nil
}

// ensureLayer returns the folder of the layer of t, building it when the
// cache does not hold it. The caller holds the cache lock shared.
func (d *Driver) ensureLayer(ctx context.Context, digest string, t *tree) (string, error) {
	return d.ensure(digest, func(tmp string) error { return writeTree(ctx, tmp, t) })
}

// ensure returns the folder of the layer digest, which fill writes into a
// temporary folder when the cache does not hold it: a recipe's tree
// (ensureLayer) or an image's layer (ensureImageLayer). A fill that fails
// leaves nothing; one that succeeds is flushed and renamed into place.
func (d *Driver) ensure(digest string, fill func(tmp string) error) (string, error) {
	dir, err := d.layerDir(digest)
	if err != nil {
		return "", err
	}
	if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
		return dir, nil
	}
	if _, err := d.cleanTemps(); err != nil {
		return "", err
	}
	tmp, release, err := d.lockedTemp()
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", digest, err)
	}
	defer release()
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", fmt.Errorf("layer %s: %w", digest, err)
	}
	fd, err := unix.Open(tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("layer %s: %w", digest, err)
	}
	defer unix.Close(fd)
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("layer %s: %w", digest, err)
	}
	if err := fill(tmp); err != nil {
		return fail(err)
	}
	// One syncfs instead of an fsync per file: the whole tree is on disk
	// before the rename makes it look complete.
	if err := unix.Syncfs(fd); err != nil {
		return fail(fmt.Errorf("syncfs: %w", err))
	}
	if err := os.Rename(tmp, dir); err != nil {
		if fi, serr := os.Lstat(dir); serr == nil && fi.IsDir() {
			os.RemoveAll(tmp) // another build of the same digest won
			return dir, nil
		}
		return fail(err)
	}
	if pfd, err := unix.Open(d.layersDir(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		unix.Fsync(pfd)
		unix.Close(pfd)
	}
	return dir, nil
}
