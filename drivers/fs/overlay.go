//go:build linux

package fs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"hutch/plan"
)

// lowersOf are the lower folders of an overlay mount, top first, as its
// superblock options show them: `lowerdir=a:b:c` when it was mounted with
// mount(2), one `lowerdir+=a` per folder when it was mounted with
// fsconfig(2) (Linux 6.8 and later print each as it was given).
func lowersOf(m *mountinfo.Info) []string {
	var out []string
	for _, o := range strings.Split(m.VFSOptions, ",") {
		if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
			out = append(out, strings.Split(v, ":")...)
		} else if v, ok := strings.CutPrefix(o, "lowerdir+="); ok {
			out = append(out, v)
		}
	}
	return out
}

// lowerOf is the topmost lower folder of an overlay mount: the recipe's
// layer.
func lowerOf(m *mountinfo.Info) string {
	if ls := lowersOf(m); len(ls) > 0 {
		return ls[0]
	}
	return ""
}

// lowerDigests are the digests the folders name, top first, for the
// container's record (overlay/layer: one per line).
func lowerDigests(lowers []string) []string {
	out := make([]string, len(lowers))
	for i, l := range lowers {
		out[i] = "sha256:" + filepath.Base(l)
	}
	return out
}

// observedImage is the image part of an observed rootfs: the layers below
// the recipe's, read back from the mount (drift of the image, or of the tag
// a manifest names, shows as other layers), and the reference and digest
// the container's record (overlay/image) says they came from. nil when the
// overlay has only the recipe's layer.
func (d *Driver) observedImage(m *mountinfo.Info, p overlayPaths) *plan.RootfsImage {
	lowers := lowersOf(m)
	if len(lowers) < 2 {
		return nil
	}
	ri := &plan.RootfsImage{}
	if b, err := os.ReadFile(filepath.Join(p.dir, "image")); err == nil {
		json.Unmarshal(b, ri)
	}
	ri.Layers = nil
	for i := len(lowers) - 1; i >= 1; i-- {
		if filepath.Dir(lowers[i]) != d.layersDir() {
			ri.Layers = append(ri.Layers, "?"+lowers[i]) // not one of this cache's
			continue
		}
		ri.Layers = append(ri.Layers, "sha256:"+filepath.Base(lowers[i]))
	}
	return ri
}

// sameImageLayers reports whether two rootfs images stack the same layers
// (the reference and manifest digest may differ: a copy of an image, or a
// new config over the same layers, needs no new rootfs).
func sameImageLayers(a, b *plan.RootfsImage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return slices.Equal(a.Layers, b.Layers)
}

// recordImage writes the container's overlay/image: the image its lower
// layers came from, for Observe to show; removes it for a rootfs without
// one.
func recordImage(p overlayPaths, ri *plan.RootfsImage) error {
	f := filepath.Join(p.dir, "image")
	if ri == nil {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	b, err := json.Marshal(ri)
	if err != nil {
		return err
	}
	return os.WriteFile(f, b, 0o600)
}

// legacyMountMax is the most mount(2) takes as its data: one page.
const legacyMountMax = 4096 - 1

// mountLowers mounts an overlay at target over lowers (top first). One
// lower is mounted as before, with mount(2). Several are given to
// fsconfig(2) one by one as `lowerdir+` (Linux 6.8 and later), which has
// no limit but overlayfs's own 500 layers: mount(2)'s options must fit in
// one page, about 45 layers of this cache's paths. On an older kernel
// (fsconfig refuses lowerdir+ with EINVAL) the options go to mount(2) if
// they fit, and an error says why otherwise.
func mountLowers(target string, lowers []string, upper, work string, readOnly bool) error {
	for _, s := range append(append([]string{}, lowers...), upper, work) {
		if strings.ContainsAny(s, ",:\\") {
			return fmt.Errorf("path %q holds a comma, colon or backslash, which overlay options cannot carry", s)
		}
	}
	data := "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + upper + ",workdir=" + work
	var flags uintptr = unix.MS_NODEV
	if readOnly {
		// overlayfs refuses a single lowerdir without an upperdir
		// (EINVAL), so a read-only rootfs is the same overlay mounted
		// MS_RDONLY: its upper folder stays empty.
		flags |= unix.MS_RDONLY
	}
	if len(lowers) == 1 {
		if err := unix.Mount("overlay", target, "overlay", flags, data); err != nil {
			return fmt.Errorf("mount overlay %s: %w", data, err)
		}
		return nil
	}
	err := fsmountOverlay(target, lowers, upper, work, readOnly)
	if !errors.Is(err, errNoLowerdirPlus) {
		return err
	}
	if len(data) > legacyMountMax {
		return fmt.Errorf("mount overlay of %d layers: this kernel's overlayfs has no lowerdir+ (Linux 6.8), and the %d bytes of options exceed mount(2)'s page of %d", len(lowers), len(data), legacyMountMax)
	}
	if err := unix.Mount("overlay", target, "overlay", flags, data); err != nil {
		return fmt.Errorf("mount overlay %s: %w", data, err)
	}
	return nil
}

var errNoLowerdirPlus = errors.New("overlayfs has no lowerdir+")

// fsmountOverlay is the new mount API's overlay: fsopen, one fsconfig per
// option, FSCONFIG_CMD_CREATE, fsmount with MOUNT_ATTR_NODEV (and RDONLY),
// move_mount onto target.
func fsmountOverlay(target string, lowers []string, upper, work string, readOnly bool) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if err == unix.ENOSYS {
			return errNoLowerdirPlus
		}
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	for _, l := range lowers {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			if err == unix.EINVAL {
				return errNoLowerdirPlus
			}
			return fmt.Errorf("fsconfig lowerdir+=%s: %w", l, err)
		}
	}
	for k, v := range map[string]string{"upperdir": upper, "workdir": work} {
		if err := unix.FsconfigSetString(fd, k, v); err != nil {
			return fmt.Errorf("fsconfig %s=%s: %w", k, v, err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("fsconfig create overlay over %d layers: %w", len(lowers), err)
	}
	attr := unix.MOUNT_ATTR_NODEV
	if readOnly {
		attr |= unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("fsmount overlay: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount overlay to %s: %w", target, err)
	}
	return nil
}
