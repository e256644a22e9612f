//go:build linux

package net

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A network namespace is a property of a thread, not of a process: setns(2)
// and unshare(CLONE_NEWNET) move only the calling thread. The Go scheduler
// moves goroutines between threads at will, so code that switches namespace
// must hold its thread with runtime.LockOSThread for as long as it is away,
// and must come back before unlocking; otherwise other goroutines would
// later run, unknowingly, inside the container's network.
//
// hutch switches a thread only for two short moments: to create a namespace
// (unshare has no "create elsewhere" form) and to open a netlink socket in
// one. A netlink socket stays bound to the namespace it was opened in, so all
// further work goes through that socket from any thread (the handles of
// netlink.Handle). Both moments run on a fresh goroutine (see onThreadIn):
// if the thread cannot return home it stays locked, and the Go runtime
// terminates a locked thread when its goroutine ends, instead of handing it
// to other goroutines.

// errNoNetns says that a named network namespace is not mounted at its path.
var errNoNetns = errors.New("network namespace not mounted")

// onThreadIn runs fn on a locked OS thread after moving that thread, with
// setns(2), into the network namespace open as ns (nil: stay in the current
// one, but still on a fresh locked thread), then moves the thread back.
func onThreadIn(ns *os.File, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open this thread's network namespace: %w", err)
			return
		}
		defer home.Close()
		if ns != nil {
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				errc <- fmt.Errorf("setns %s: %w", ns.Name(), err)
				return
			}
		}
		err = fn()
		if serr := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); serr != nil {
			// The thread is stuck in another namespace: keep it locked, so
			// that the runtime kills it when this goroutine returns.
			errc <- errors.Join(err, fmt.Errorf("return to the original network namespace: %w", serr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// openNetns opens the bind mount of a named network namespace and checks that
// it is one (an nsfs file, NSFS_MAGIC); a plain file left by an interrupted
// create is not. It returns an error wrapping errNoNetns when there is none.
func openNetns(path string) (*os.File, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, errNoNetns)
	}
	if err != nil {
		return nil, err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("statfs %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		f.Close()
		return nil, fmt.Errorf("%s: not an nsfs mount: %w", path, errNoNetns)
	}
	return f, nil
}

// handleIn opens a rtnetlink socket inside the network namespace open as ns
// (nil: the current thread's, the host's).
func handleIn(ns *os.File) (*netlink.Handle, error) {
	if ns == nil {
		return netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	var h *netlink.Handle
	err := onThreadIn(ns, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink socket in %s: %w", ns.Name(), err)
	}
	return h, nil
}

// prepareNetnsDir makes dir a shared mount point, as `ip netns add` makes
// /run/netns: a namespace unmounted in one mount namespace is then unmounted
// in every mount namespace that got a copy of the folder (a container
// started meanwhile), so the namespace is freed. When dir is not a mount
// point, mount(MS_SHARED) fails with EINVAL; dir is then bind-mounted onto
// itself once to become one.
func prepareNetnsDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if !errors.Is(err, unix.EINVAL) {
		if err != nil {
			return fmt.Errorf("mount --make-shared %s: %w", dir, err)
		}
		return nil
	}
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mount --bind %s %s: %w", dir, dir, err)
	}
	// A bind mount made under a shared parent (systemd makes / shared)
	// joins the parent's peer group, so every namespace mounted in dir
	// would also be copied, hidden, under /. Private then shared gives dir
	// a peer group of its own.
	if err := unix.Mount("", dir, "none", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("mount --make-private %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "none", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("mount --make-shared %s: %w", dir, err)
	}
	return nil
}

// createNetns makes a new network namespace, runs setup inside it (with a
// netlink socket opened there) and then bind-mounts it at path, which must
// not exist. Because setup runs before the mount, nobody sees the namespace
// under its name before setup is done: hutch marks its namespaces there.
//
// Steps: open(path, O_CREAT|O_EXCL), then on a locked thread
// unshare(CLONE_NEWNET), setup, mount --bind /proc/thread-self/ns/net path,
// setns back. On failure the file is removed again.
func createNetns(path string, setup func(h *netlink.Handle) error) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	err = onThreadIn(nil, func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
		}
		if setup != nil {
			h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
			if err != nil {
				return fmt.Errorf("netlink socket: %w", err)
			}
			err = setup(h)
			h.Close()
			if err != nil {
				return err
			}
		}
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mount --bind /proc/thread-self/ns/net %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// removeNetns unmounts the bind mount at path (MNT_DETACH: processes still
// inside keep the namespace alive, but its name is gone) and removes the
// file. Either may be gone already.
func removeNetns(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		// EINVAL: not a mount point (already unmounted).
		return fmt.Errorf("umount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// netnsPath is where the named namespace is bind-mounted.
func (d *Driver) netnsPath(name string) string {
	return filepath.Join(d.netnsDir, name)
}
