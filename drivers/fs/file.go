//go:build linux

package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"hutch/plan"
)

// FileDriver keeps the files of containers' bundles that hutch writes and
// bind-mounts into the container (plan.KindFile): /etc/hosts and
// /etc/resolv.conf of containers on hutch networks. The path is always
// worked out from the state root and the container's name, never taken
// from a record.
type FileDriver struct{ stateRoot string }

// NewFileDriver returns the driver of bundle files under
// stateRoot/containers.
func NewFileDriver(stateRoot string) *FileDriver {
	return &FileDriver{stateRoot: filepath.Clean(stateRoot)}
}

// Kind is plan.KindFile.
func (d *FileDriver) Kind() plan.Kind { return plan.KindFile }

func (d *FileDriver) path(r plan.Resource) (*plan.File, string, error) {
	f, ok := r.(*plan.File)
	if !ok || f == nil {
		return nil, "", fmt.Errorf("file driver: resource %T is not a *plan.File", r)
	}
	if _, ok := plan.BundleFiles[f.Name]; !ok {
		return nil, "", fmt.Errorf("file %s of %s: not a bundle file hutch writes", f.Name, f.Container)
	}
	if f.Container == "" || f.Container != filepath.Base(f.Container) || f.Container == "." || f.Container == ".." {
		return nil, "", fmt.Errorf("file %s: container name %q cannot name a folder", f.Name, f.Container)
	}
	return f, filepath.Join(d.stateRoot, "containers", f.Container, f.Name), nil
}

// Observe reads the file: nil when it is missing.
func (d *FileDriver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	w, path, err := d.path(want)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", path, err)
	}
	got := *w
	got.Content = string(b)
	return &got, nil
}

// Diff: the content changes in place.
func (d *FileDriver) Diff(got, want plan.Resource) (fields, forceReplace []string) {
	g, ok1 := got.(*plan.File)
	w, ok2 := want.(*plan.File)
	if !ok1 || !ok2 || g == nil || w == nil {
		return []string{"type"}, []string{"type"}
	}
	if g.Content != w.Content {
		fields = append(fields, "content")
	}
	return fields, nil
}

// Apply writes the content into the file in place (O_TRUNC, not a new
// file renamed over it): the container's bind mount keeps seeing it. The
// bundle folder is made when missing; a symlink in the file's place is
// refused (O_NOFOLLOW).
func (d *FileDriver) Apply(ctx context.Context, ch *plan.Change) error {
	w, path, err := d.path(ch.After)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("file %s: %w", path, err)
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("file %s: open: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if _, err := f.WriteString(w.Content); err != nil {
		f.Close()
		return fmt.Errorf("file %s: write: %w", path, err)
	}
	// The container reads it as whatever user it runs as.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("file %s: chmod: %w", path, err)
	}
	return f.Close()
}

// Delete removes the file; the bundle folder goes with the container.
func (d *FileDriver) Delete(ctx context.Context, r plan.Resource) error {
	_, path, err := d.path(r)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("file %s: %w", path, err)
	}
	return nil
}
