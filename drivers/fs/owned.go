//go:build linux

package fs

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"hutch/internal/scan"
	"hutch/plan"
)

// Finding what hutch owns without the state store: a container's rootfs is
// mounted at <stateRoot>/containers/<container>/rootfs, so a mount there (or
// below it) is hutch's, even when the rest of the folder, state.json
// included, was removed: the mount point of a mounted overlay cannot be
// removed, and /proc/self/mountinfo still lists it. A mount anywhere else is
// never returned.

// containersDir is the folder of the container folders, with symlinks
// resolved as mountinfo shows paths.
func (d *Driver) containersDir() string {
	dir := filepath.Join(d.stateRoot, "containers")
	if real, err := filepath.EvalSymlinks(d.stateRoot); err == nil {
		dir = filepath.Join(real, "containers")
	}
	return dir
}

// rootfsMounts maps each container to the mount points at or below its
// rootfs under this driver's state root, reading mountinfo once per
// scan.With context (a delete asks for every name; a mount table that
// holds N overlays read N times grows as N squared).
func (d *Driver) rootfsMounts(ctx context.Context) (map[string][]string, error) {
	return scan.Memo(ctx, "rootfs-mounts:"+d.stateRoot, d.scanRootfsMounts)
}

func (d *Driver) scanRootfsMounts() (map[string][]string, error) {
	ms, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, fmt.Errorf("rootfs: find hutch's: read mountinfo: %w", err)
	}
	dir := d.containersDir()
	out := map[string][]string{}
	for _, m := range ms {
		rel, ok := strings.CutPrefix(m.Mountpoint, dir+"/")
		if !ok {
			continue
		}
		c, rest, _ := strings.Cut(rel, "/")
		if c == "" || (rest != "rootfs" && !strings.HasPrefix(rest, "rootfs/")) {
			continue
		}
		out[c] = append(out[c], m.Mountpoint)
	}
	return out, nil
}

// Owned returns the container's rootfs as a plan.Rootfs value this
// driver's Delete accepts (Bundle is the container's folder under the state
// root) when something is mounted at or below its rootfs folder. It only
// reads /proc/self/mountinfo.
func (d *Driver) Owned(ctx context.Context, container string) ([]plan.Resource, error) {
	if container == "" || container == "." || container == ".." || strings.ContainsAny(container, "/\x00") {
		return nil, fmt.Errorf("rootfs: find container %q's: not a container name", container)
	}
	ms, err := d.rootfsMounts(ctx)
	if err != nil {
		return nil, err
	}
	if len(ms[container]) == 0 {
		return nil, nil
	}
	return []plan.Resource{&plan.Rootfs{Container: container, Bundle: filepath.Join(d.stateRoot, "containers", container)}}, nil
}

// Marked lists the containers with a mount at or below their rootfs folder
// under the state root, sorted.
func (d *Driver) Marked(ctx context.Context) ([]string, error) {
	ms, err := d.rootfsMounts(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for c := range ms {
		names = append(names, c)
	}
	slices.Sort(names)
	return names, nil
}

// Elsewhere names the other state roots that have a container of this name
// running on an overlay: a mount at <root>/containers/<container>/rootfs
// whose lowerdir is a layer of <root>/layers. The namespaces, interfaces
// and cgroup marked for the container are then that root's, not leftovers
// of this one.
func (d *Driver) Elsewhere(container string) ([]string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("overlay"))
	if err != nil {
		return nil, fmt.Errorf("rootfs: read mountinfo: %w", err)
	}
	own := filepath.Dir(d.containersDir())
	var roots []string
	for _, m := range ms {
		p := m.Mountpoint
		if filepath.Base(p) != "rootfs" || filepath.Base(filepath.Dir(p)) != container ||
			filepath.Base(filepath.Dir(filepath.Dir(p))) != "containers" {
			continue
		}
		root := filepath.Dir(filepath.Dir(filepath.Dir(p)))
		if root == own || filepath.Dir(lowerOf(m)) != filepath.Join(root, "layers") || slices.Contains(roots, root) {
			continue
		}
		roots = append(roots, root)
	}
	return roots, nil
}

// observedMount is mountAt(p), from one read of mountinfo per scan.With
// context: an apply observes every container's rootfs, and reading the
// whole table (one overlay per container) for each made a no-op apply of
// 1000 containers spend 2 s parsing it. The table is keyed by mount point;
// the last mount stacked at p, as in mountAt, is the one its path reaches.
func observedMount(ctx context.Context, p string) (*mountinfo.Info, error) {
	if !scan.Active(ctx) {
		return mountAt(p)
	}
	byPoint, err := scan.Memo(ctx, "mounts", func() (map[string]*mountinfo.Info, error) {
		ms, err := mountinfo.GetMounts(nil)
		if err != nil {
			return nil, fmt.Errorf("read mountinfo: %w", err)
		}
		out := make(map[string]*mountinfo.Info, len(ms))
		for _, m := range ms {
			out[m.Mountpoint] = m
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	return byPoint[p], nil
}

// currentMount is mountAt(p) when p is a mount point, and nil without
// reading mountinfo when statx(2) says it is none (STATX_ATTR_MOUNT_ROOT,
// Linux 5.8; older kernels read mountinfo). Apply asks it for every
// container it mounts, and parsing the whole table each time (one overlay
// per container) made an apply of 1000 containers spend 2 s in it.
func currentMount(p string) (*mountinfo.Info, error) {
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_BASIC_STATS, &st)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err == nil && st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && st.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return nil, nil
	}
	return mountAt(p)
}
