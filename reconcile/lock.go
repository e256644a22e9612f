package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrLocked is wrapped when another hutch holds a container's lock and the
// caller asked not to wait.
var ErrLocked = errors.New("locked by another hutch")

// Lock is a held per-container lock: an flock(2) on root/locks/NAME.lock.
// The kernel drops it when the process dies, so a killed hutch never leaves
// a container locked.
type Lock struct {
	name string
	path string
	f    *os.File
}

func (s *Store) lockPath(container string) string {
	return filepath.Join(s.opts.StateRoot, "locks", container+".lock")
}

// Lock takes a container's lock. When another process holds it, Lock calls
// waiting once (if not nil) and blocks until it is free, or, with noWait,
// returns an error wrapping ErrLocked.
//
// A delete removes the lock file while it holds the lock; a process that was
// waiting then holds a lock on a file no longer in the folder. Lock checks,
// after flock returns, that the file it locked is still the one at the path
// (same inode), and starts again when it is not.
func (s *Store) Lock(container string, noWait bool, waiting func()) (*Lock, error) {
	return s.LockContext(context.Background(), container, noWait, waiting)
}

// LockContext is Lock whose wait ends, with an error wrapping ctx's, when
// ctx ends.
//
// The lock file is opened with O_NOFOLLOW and must be a regular file, in a
// locks folder that is a real folder: a symlink planted at either path
// makes Lock fail and is never followed (O_CREAT through it would create or
// open a file anywhere).
func (s *Store) LockContext(ctx context.Context, container string, noWait bool, waiting func()) (*Lock, error) {
	if err := CheckName(container); err != nil {
		return nil, fmt.Errorf("container %s: lock: %w", container, err)
	}
	path := s.lockPath(container)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("container %s: lock: %w", container, err)
	}
	if fi, err := os.Lstat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("container %s: lock: %s is not a folder (a symlink?), which hutch does not follow", container, filepath.Dir(path))
	}
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o600)
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("container %s: lock %s: a symlink, which hutch does not follow", container, path)
		}
		if err != nil {
			return nil, fmt.Errorf("container %s: lock: %w", container, err)
		}
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			f.Close()
			return nil, fmt.Errorf("container %s: lock %s: not a regular file", container, path)
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			if noWait {
				f.Close()
				return nil, fmt.Errorf("container %s: %w (%s)", container, ErrLocked, path)
			}
			if waiting != nil {
				waiting()
				waiting = nil
			}
			if err = waitFlock(ctx, f); ctx.Err() != nil && err == ctx.Err() {
				// f now belongs to the flock left running (waitFlock).
				return nil, fmt.Errorf("container %s: waiting for the lock: %w", container, err)
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("container %s: lock %s: %w", container, path, err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Lstat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return &Lock{name: container, path: path, f: f}, nil
		}
		f.Close() // removed (or replaced) while we waited: try again
	}
}

// waitFlock takes f's lock (flock(2) LOCK_EX), waiting until it is free or
// ctx ends. A blocked flock cannot be interrupted: when ctx ends first it is
// left to finish in the background, which then closes f (and so releases
// what it got), and waitFlock returns ctx.Err(); the caller must not touch
// f then.
func waitFlock(ctx context.Context, f *os.File) error {
	if ctx.Done() == nil {
		return flockRetry(f, unix.LOCK_EX)
	}
	done := make(chan error, 1)
	go func() { done <- flockRetry(f, unix.LOCK_EX) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		go func() {
			<-done
			f.Close()
		}()
		return ctx.Err()
	}
}

func flockRetry(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// Unlock releases the lock.
func (l *Lock) Unlock() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// remove deletes the lock file while the lock is still held, then releases
// it: the last step of deleting a container.
func (l *Lock) remove() error {
	err := os.Remove(l.path)
	l.Unlock()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("container %s: remove lock: %w", l.name, err)
	}
	return nil
}
