//go:build linux

package cgroup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// DefaultRoot is where cgroup filesystems are mounted on every distribution:
// the cgroup2 mount itself (pure v2), or a tmpfs holding one mount per v1
// controller (v1 and hybrid).
const DefaultRoot = "/sys/fs/cgroup"

// The values Version returns.
const (
	V1     = "v1"     // only cgroup v1 controller mounts
	V2     = "v2"     // cgroup2 mounted at the root
	Hybrid = "hybrid" // v1 controller mounts plus a cgroup2 mount (usually root/unified)
)

// Mount is one cgroup filesystem mount, as a line of /proc/self/mountinfo
// describes it.
type Mount struct {
	Point  string // mount point, e.g. /sys/fs/cgroup/memory
	FSType string // "cgroup" (v1) or "cgroup2"
	// Options are the super block options; for v1 they name the controllers
	// of the hierarchy ("rw,cpu,cpuacct").
	Options string
}

// ParseMountinfo reads the cgroup and cgroup2 mounts from text in the
// format of /proc/PID/mountinfo.
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	infos, err := mountinfo.GetMountsFromReader(r, mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("parse mountinfo: %w", err)
	}
	mounts := make([]Mount, 0, len(infos))
	for _, in := range infos {
		mounts = append(mounts, Mount{Point: in.Mountpoint, FSType: in.FSType, Options: in.VFSOptions})
	}
	return mounts, nil
}

// v1Controllers are the controller names a v1 mount's options can carry.
// Other options (rw, relatime, name=systemd, ...) are not controllers.
var v1Controllers = []string{
	"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb",
	"memory", "misc", "net_cls", "net_prio", "perf_event", "pids", "rdma",
}

// wanted are the controllers hutch uses: the four it sets limits with, plus
// cpuacct (v1 CPU usage) and freezer (v1: stop a fork bomb before killing it).
// On v2 usage and freezing are core files of every cgroup.
var wanted = []string{"memory", "cpu", "cpuacct", "cpuset", "pids", "freezer"}

// layout is what detection found under the root.
type layout struct {
	version string
	v1      map[string]string // v1 controller -> mount point
	unified string            // cgroup2 mount point, "" when none
	v2ctrl  map[string]bool   // controllers in unified/cgroup.controllers
}

// detect classifies the mounts found under root. Only mounts at the root
// itself or directly below it count: a cgroup filesystem mounted elsewhere
// (inside a container's rootfs) is not the host's hierarchy.
func detect(root string, mounts []Mount) (*layout, error) {
	l := &layout{v1: map[string]string{}, v2ctrl: map[string]bool{}}
	for _, m := range mounts {
		p := filepath.Clean(m.Point)
		switch m.FSType {
		case "cgroup2":
			if p == root {
				l.unified = p
				l.version = V2
			} else if filepath.Dir(p) == root && l.version != V2 {
				l.unified = p
			}
		case "cgroup":
			if filepath.Dir(p) != root {
				continue
			}
			for _, opt := range strings.Split(m.Options, ",") {
				if slices.Contains(v1Controllers, opt) {
					if _, dup := l.v1[opt]; !dup {
						l.v1[opt] = p
					}
				}
			}
		}
	}
	switch {
	case l.version == V2:
		l.v1 = map[string]string{} // v1 mounts cannot sit inside a cgroup2 root
	case len(l.v1) > 0 && l.unified != "":
		l.version = Hybrid
	case len(l.v1) > 0:
		l.version = V1
	default:
		return nil, fmt.Errorf("cgroup root %s: no cgroup v1 controller mount and no cgroup2 mount found", root)
	}
	if l.unified != "" {
		// cgroup.controllers lists what the cgroup2 hierarchy can give its
		// children; in a hybrid host it is only what v1 did not take.
		b, err := os.ReadFile(filepath.Join(l.unified, "cgroup.controllers"))
		if err != nil {
			return nil, fmt.Errorf("cgroup root %s: read cgroup2 controllers: %w", root, err)
		}
		for _, c := range strings.Fields(string(b)) {
			l.v2ctrl[c] = true
		}
	}
	return l, nil
}

// mountsFromShape derives the mounts from the shape of a folder tree, for
// roots that are not the host's (a test tree shaped like cgroupfs): a
// cgroup.controllers file at the root means cgroup2 there; otherwise each
// sub-folder (not symlink) holding cgroup.controllers is a cgroup2 mount, and
// each holding a tasks file is a v1 mount whose controllers its name lists,
// as distributions name them ("cpu,cpuacct").
func mountsFromShape(root string) ([]Mount, error) {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return []Mount{{Point: root, FSType: "cgroup2", Options: "rw"}}, nil
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("cgroup root %s: %w", root, err)
	}
	var mounts []Mount
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if exists(filepath.Join(dir, "cgroup.controllers")) {
			mounts = append(mounts, Mount{Point: dir, FSType: "cgroup2", Options: "rw"})
		} else if exists(filepath.Join(dir, "tasks")) {
			mounts = append(mounts, Mount{Point: dir, FSType: "cgroup", Options: "rw," + e.Name()})
		}
	}
	return mounts, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// missingError says which wanted controller the host lacks and where hutch
// looked for it.
func (d *Driver) missingError(ctrl string) error {
	where := fmt.Sprintf("no cgroup v1 mount of %s under %s", ctrl, d.root)
	if d.unified != "" {
		where += fmt.Sprintf(" and %s is not in %s", ctrl, filepath.Join(d.unified, "cgroup.controllers"))
	}
	return fmt.Errorf("controller %s is missing: %s: %w", ctrl, where, ErrNoController)
}

// ErrNoController is wrapped by errors that name a controller the host does
// not offer.
var ErrNoController = errors.New("cgroup controller not available")
