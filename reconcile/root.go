package reconcile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"hutch/plan"
	"hutch/spec"
)

// The state root is trusted: its records name the folders delete removes,
// the mounts it detaches and the processes it signals, all as root. So it
// must be root's alone. A root that another user owns, or may write to
// (group or others write permission), lets that user plant records,
// process.json files or symlinks that root then acts on; a root that is
// itself a symlink moves with whoever may change the link. CheckRoot
// refuses all three, once, before any command reads or writes the store.

// CheckRoot checks the state root folder: it must be a folder, not a
// symlink, owned by root (uid 0) and not writable by group or others
// (lstat(2): st_uid and the mode bits 022). When it is missing, create
// makes it (and its missing parents) mode 0700; without create a missing
// root is no error, as there is nothing in it to trust (hutch plan writes
// nothing).
func CheckRoot(root string, create bool) error {
	root = filepath.Clean(root)
	fi, err := os.Lstat(root)
	if errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil
		}
		if err := os.MkdirAll(root, 0o700); err != nil {
			return fmt.Errorf("state root %s: create: %w", root, err)
		}
		fi, err = os.Lstat(root)
	}
	if err != nil {
		return fmt.Errorf("state root %s: %w", root, err)
	}
	switch st, ok := fi.Sys().(*syscall.Stat_t); {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("state root %s: is a symlink, which hutch does not follow (give the folder it points to)", root)
	case !fi.IsDir():
		return fmt.Errorf("state root %s: not a folder", root)
	case !ok:
		return fmt.Errorf("state root %s: no owner in its stat", root)
	case st.Uid != 0:
		return fmt.Errorf("state root %s: owned by uid %d, not by root: another user could plant records that hutch acts on as root", root, st.Uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("state root %s: mode %04o is writable by group or others, who could plant records that hutch acts on as root (chmod go-w %s)",
			root, fi.Mode().Perm(), root)
	}
	return nil
}

// CheckName refuses a name that cannot be a container's, network's or
// link's (spec.CheckName: a DNS label, the rule of metadata.name): every
// name becomes a path under the state root, so a name from the command
// line, from `delete -f` (which does not validate) or from a mark on the
// host is checked before it reaches one.
func CheckName(name string) error { return spec.CheckName(name) }

// dir returns a container's folder after checking its name, and that the
// folder, when it exists, is a real folder and not a symlink (lstat(2)):
// the store reads, writes and removes files below it and never follows a
// link out of the state root.
func (s *Store) dir(container string) (string, error) {
	if err := CheckName(container); err != nil {
		return "", fmt.Errorf("container %s: %w", container, err)
	}
	dir := s.Dir(container)
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return dir, nil
	}
	if err != nil {
		return "", fmt.Errorf("container %s: %w", container, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("container %s: %s is not a folder (a symlink?), which hutch does not follow", container, dir)
	}
	return dir, nil
}

// checkRecords refuses a state whose records disagree with the container
// they are stored for: each record's owner must be the container, and
// every host path a record carries is worked out again from the name and
// must be the same (the bundle folder of a rootfs or process, which delete
// unmounts below, empties and whose process.json names the pids it
// signals; the cgroup path, whose processes it kills). Nothing in a
// record can then point delete at another folder or process.
func (s *Store) checkRecords(st *State) error {
	var errs []error
	for i := range st.Resources {
		rec := &st.Resources[i]
		res, err := rec.Resource()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if res.Owner() != st.Container {
			errs = append(errs, fmt.Errorf("state record %s: owned by %q, not by the container it is stored for", rec.ID, res.Owner()))
			continue
		}
		want, got := "", ""
		switch r := res.(type) {
		case *plan.Rootfs:
			want, got = s.Dir(st.Container), r.Bundle
		case *plan.Process:
			want, got = s.Dir(st.Container), r.Bundle
		case *plan.Cgroup:
			o := s.opts
			if o.CgroupParent == "" {
				o.CgroupParent = plan.DefaultOptions().CgroupParent
			}
			want, got = o.CgroupPath(st.Container), r.Path
		}
		if want != got {
			errs = append(errs, fmt.Errorf("state record %s: names %q where container %s's is %q", rec.ID, got, st.Container, want))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("container %s: %s: refused, as hutch would act on it as root:\n%w", st.Container, s.statePath(st.Container), err)
	}
	return nil
}
