//go:build linux

package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"hutch/plan"
)

// Driver builds rootfs layers under a state root and mounts one overlay per
// container. It is the reconcile driver of plan.KindRootfs.
//
// Each container's bundle folder holds:
//
//	rootfs/         the overlay mount point (config.json's root.path)
//	overlay/upper/  the container's writes (overlay upperdir)
//	overlay/work/   overlayfs's scratch folder (workdir)
//	overlay/layer   the digest of the layer the upper folder was made over
type Driver struct {
	stateRoot string

	mu    sync.Mutex
	res   *resolver
	trees map[string]*tree // resolved recipes by digest, for Apply after Observe
	// builds has one lock per digest: containers of one recipe applied at
	// once wait for one build instead of each making its own.
	builds map[string]*sync.Mutex
	// quick keeps resolutions between commands (quick.go).
	quick quickState
	// readOnly is set by NewReadOnly: the driver writes nothing.
	readOnly bool
}

// New returns the driver of the layer cache under stateRoot/layers.
func New(stateRoot string) *Driver {
	d := &Driver{stateRoot: filepath.Clean(stateRoot), res: newResolver(),
		trees: map[string]*tree{}, builds: map[string]*sync.Mutex{}}
	d.res.cacheDir = filepath.Join(d.stateRoot, "cache")
	return d
}

// NewReadOnly returns the driver `hutch plan` observes with: it resolves
// recipes exactly as New's does (the same reading of the host, so the same
// digest, and a kept resolution is used when it still holds), but it
// writes nothing under stateRoot, not even a kept resolution, and its
// Apply, Delete, Export and GC refuse. No driver runs a program of the
// recipe (python.go): reviewing a manifest with plan is safe.
func NewReadOnly(stateRoot string) *Driver {
	d := New(stateRoot)
	d.readOnly = true
	return d
}

// errReadOnly is what a read-only driver's writing methods return.
func (d *Driver) errReadOnly(container, op string) error {
	return fmt.Errorf("rootfs %s: %s: the driver is read-only (hutch plan writes nothing)", container, op)
}

// Kind is plan.KindRootfs.
func (d *Driver) Kind() plan.Kind { return plan.KindRootfs }

func asRootfs(r plan.Resource) (*plan.Rootfs, error) {
	rf, ok := r.(*plan.Rootfs)
	if !ok || rf == nil {
		return nil, fmt.Errorf("fs driver: resource %T is not a *plan.Rootfs", r)
	}
	if !filepath.IsAbs(rf.Bundle) || filepath.Clean(rf.Bundle) == "/" {
		return nil, fmt.Errorf("rootfs %s: bundle folder %q is not an absolute path below /", rf.Container, rf.Bundle)
	}
	return rf, nil
}

// paths of a container's overlay.
type overlayPaths struct{ rootfs, dir, upper, work, record string }

func pathsOf(rf *plan.Rootfs) overlayPaths {
	b := filepath.Clean(rf.Bundle)
	o := filepath.Join(b, "overlay")
	return overlayPaths{rootfs: filepath.Join(b, "rootfs"), dir: o,
		upper: filepath.Join(o, "upper"), work: filepath.Join(o, "work"), record: filepath.Join(o, "layer")}
}

// resolve resolves a recipe on the host and returns its tree and digest;
// a driver that may write keeps the resolution (quick.go).
func (d *Driver) resolve(ctx context.Context, rf *plan.Rootfs) (*tree, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	start := time.Now()
	t, err := d.res.resolve(ctx, rf)
	if err != nil {
		return nil, "", fmt.Errorf("rootfs %s: %w", rf.Container, err)
	}
	digest := t.digest(rf)
	d.trees[digest] = t
	d.keep(rf, t, digest, start)
	return t, digest, nil
}

// Digest resolves the recipe against the host as it is now (binaries on
// PATH, ELF closures, the python interpreter's standard library, every
// source file's identity) and returns the digest of the layer it gives,
// "sha256:<hex>".
func (d *Driver) Digest(r *plan.Rootfs) (string, error) {
	return d.digestOf(context.Background(), r)
}

// mountAt returns the topmost mount at p, or nil.
func mountAt(p string) (*mountinfo.Info, error) {
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(p))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	if len(ms) == 0 {
		return nil, nil
	}
	return ms[len(ms)-1], nil
}

func readOnly(m *mountinfo.Info) bool {
	for _, o := range strings.Split(m.Options, ",") {
		if o == "ro" {
			return true
		}
	}
	return false
}

// Observe says whether the container's rootfs is mounted and over which
// layer. It also sets want.Layer to the digest the recipe gives with the
// host's files as they are now, so that Diff sees a changed source file as
// a changed layer and Apply need not resolve the recipe again; when the
// recipe cannot be resolved (a binary is gone), want.Layer stays as it was
// and Apply reports why.
func (d *Driver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	rf, err := asRootfs(want)
	if err != nil {
		return nil, err
	}
	if digest, err := d.digestOf(ctx, rf); err == nil {
		rf.Layer = digest
	}
	p := pathsOf(rf)
	m, err := observedMount(ctx, p.rootfs)
	if err != nil {
		return nil, fmt.Errorf("rootfs %s: %w", rf.Container, err)
	}
	if m == nil || m.FSType != "overlay" {
		return nil, nil
	}
	got := *rf
	got.ReadOnly = readOnly(m)
	got.Layer = ""
	if lower := lowerOf(m); filepath.Dir(lower) == d.layersDir() {
		got.Layer = "sha256:" + filepath.Base(lower)
	}
	got.Image = d.observedImage(m, p)
	return &got, nil
}

// Diff compares the observed overlay with the wanted one. Every difference
// forces a replace: a new layer needs a new upper folder (files the
// container changed over the old layer may not fit the new one), and the
// process restarts over a new rootfs anyway.
func (d *Driver) Diff(got, want plan.Resource) (fields, forceReplace []string) {
	g, ok1 := got.(*plan.Rootfs)
	w, ok2 := want.(*plan.Rootfs)
	if !ok1 || !ok2 || g == nil || w == nil {
		return []string{"kind"}, []string{"kind"}
	}
	if g.Bundle != w.Bundle {
		fields = append(fields, "bundle")
	}
	if g.Layer != w.Layer {
		fields = append(fields, "layer")
	}
	if !sameImageLayers(g.Image, w.Image) {
		fields = append(fields, "image.layers")
	}
	if g.ReadOnly != w.ReadOnly {
		fields = append(fields, "readOnly")
	}
	return fields, fields
}

// layerFor returns the folder of the recipe's layer, building it when the
// cache lacks it, and the digest. The caller holds the cache lock shared.
func (d *Driver) layerFor(ctx context.Context, rf *plan.Rootfs) (string, string, error) {
	digest := rf.Layer
	if digest != "" {
		dir, err := d.layerDir(digest)
		if err != nil {
			return "", "", fmt.Errorf("rootfs %s: %w", rf.Container, err)
		}
		if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
			return dir, digest, nil
		}
	}
	d.mu.Lock()
	t := d.trees[digest]
	d.mu.Unlock()
	if t == nil {
		var err error
		if t, digest, err = d.resolve(ctx, rf); err != nil {
			return "", "", err
		}
	}
	b := d.buildLock(digest)
	b.Lock()
	defer b.Unlock()
	dir, err := d.ensureLayer(ctx, digest, t)
	if err != nil {
		return "", "", fmt.Errorf("rootfs %s: %w", rf.Container, err)
	}
	return dir, digest, nil
}

// Apply builds the layer (or finds it in the cache) and mounts the
// container's overlay at Bundle/rootfs: lowerdir is the shared, never
// written layer, upperdir and workdir are the container's own. A read-only
// rootfs is the same overlay mounted MS_RDONLY.
func (d *Driver) Apply(ctx context.Context, ch *plan.Change) error {
	rf, err := asRootfs(ch.After)
	if err != nil {
		return err
	}
	if d.readOnly {
		return d.errReadOnly(rf.Container, "apply")
	}
	release, err := d.lockLayers(unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer release()
	layer, digest, err := d.layerFor(ctx, rf)
	if err != nil {
		return err
	}
	rf.Layer = digest
	// The overlay's lower folders, top first: the recipe's layer, then
	// the image's from its top layer down.
	lowers := []string{layer}
	if rf.Image != nil {
		il, err := d.imageLowers(ctx, rf)
		if err != nil {
			return err
		}
		lowers = append(lowers, il...)
	}
	p := pathsOf(rf)
	fail := func(op string, err error) error {
		return fmt.Errorf("rootfs %s: %s: %w", rf.Container, op, err)
	}
	m, err := currentMount(p.rootfs)
	if err != nil {
		return fail("observe", err)
	}
	if m != nil {
		if m.FSType == "overlay" && slices.Equal(lowersOf(m), lowers) && readOnly(m) == rf.ReadOnly {
			return nil
		}
		if err := unmountAll(p.rootfs); err != nil {
			return fail("unmount the old rootfs", err)
		}
	}
	if err := os.MkdirAll(p.rootfs, 0o755); err != nil {
		return fail("make mount point", err)
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return fail("make overlay folder", err)
	}
	// An upper folder made over other layers is dropped: its whiteouts
	// and copied-up files describe changes to files of those layers. The
	// record names every layer, top first, one per line.
	record := strings.Join(lowerDigests(lowers), "\n")
	if rec, err := os.ReadFile(p.record); err != nil || string(rec) != record {
		if err := os.RemoveAll(p.upper); err != nil {
			return fail("remove stale upper folder", err)
		}
		if err := os.RemoveAll(p.work); err != nil {
			return fail("remove stale work folder", err)
		}
		if err := os.WriteFile(p.record, []byte(record), 0o600); err != nil {
			return fail("record layer", err)
		}
	}
	if err := recordImage(p, rf.Image); err != nil {
		return fail("record image", err)
	}
	for _, dir := range []string{p.upper, p.work} {
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			return fail("make overlay folder", err)
		}
	}
	if err := mountLowers(p.rootfs, lowers, p.upper, p.work, rf.ReadOnly); err != nil {
		return fail("mount", err)
	}
	return nil
}

// unmountAll removes every mount stacked at p. A busy mount (a process
// still has its cwd in it) is detached: the kernel frees it when the last
// user goes.
func unmountAll(p string) error {
	for i := 0; i < 64; i++ {
		err := unix.Unmount(p, unix.UMOUNT_NOFOLLOW)
		if err == unix.EBUSY {
			err = unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		}
		if err == unix.EINVAL || err == unix.ENOENT {
			return nil // not a mount point (any more)
		}
		if err != nil {
			return fmt.Errorf("umount %s: %w", p, err)
		}
	}
	return fmt.Errorf("umount %s: still mounted after 64 unmounts", p)
}

// Delete unmounts the container's rootfs and removes its mount point, upper
// and work folders. It succeeds when some or all of them are already gone,
// and it removes the temporary folders of layer builds that died (a kill -9
// during a build).
func (d *Driver) Delete(ctx context.Context, r plan.Resource) error {
	rf, err := asRootfs(r)
	if err != nil {
		return err
	}
	if d.readOnly {
		return d.errReadOnly(rf.Container, "delete")
	}
	p := pathsOf(rf)
	var errs []error
	// unmountAll ends only when umount(2) says EINVAL, "not a mount
	// point": no mountinfo read is needed to know (reading it for each of
	// N containers made a delete grow as N squared).
	if err := unmountAll(p.rootfs); err != nil {
		errs = append(errs, err)
	} else {
		if err := os.Remove(p.rootfs); err != nil && !os.IsNotExist(err) {
			// Not a mount point: whatever is in it is hutch's to remove.
			if err := os.RemoveAll(p.rootfs); err != nil {
				errs = append(errs, err)
			}
		}
		if err := os.RemoveAll(p.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat(d.layersDir()); err == nil {
		// Under the cache lock: gc removes temporary folders too.
		release, err := d.lockLayers(unix.LOCK_SH)
		if err == nil {
			_, err = d.cleanTemps()
			release()
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rootfs %s: delete: %w", rf.Container, err)
	}
	return nil
}

// Export writes a plain copy of the container's rootfs as its overlay
// shows it into dir (made when missing): the rootfs folder of an exported
// OCI bundle, which runc or crun use as it is. For a rootfs of host files
// that is the recipe's layer (ExportLayer); over an image, the image's
// layers with the recipe's on top, merged as overlayfs merges them
// (export_image.go). Existing files in dir are replaced.
func (d *Driver) Export(ctx context.Context, r *plan.Rootfs, dir string) error {
	if d.readOnly {
		return d.errReadOnly(r.Container, "export")
	}
	if r.Image != nil {
		return d.exportMerged(ctx, r, dir)
	}
	return d.ExportLayer(ctx, r, dir)
}

// ExportLayer writes a plain copy of the recipe's layer alone into dir
// (made when missing): for an image export that puts the image's own
// layers below it. The cached layer is copied when the cache holds it;
// otherwise the recipe is written straight into dir, and the cache is left
// as it was. Existing files in dir are replaced.
func (d *Driver) ExportLayer(ctx context.Context, r *plan.Rootfs, dir string) error {
	if d.readOnly {
		return d.errReadOnly(r.Container, "export")
	}
	t, digest, err := d.resolve(ctx, r)
	if err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("rootfs %s: export to %s: %w", r.Container, dir, err) }
	if layer, err := d.layerDir(digest); err == nil {
		if _, err := os.Stat(layer); err == nil {
			release, err := d.lockLayers(unix.LOCK_SH)
			if err != nil {
				return fail(err)
			}
			defer release()
			if _, err := os.Stat(layer); err == nil {
				t = newTree()
				if err := t.addTree(layer, "/", walkOpts{}); err != nil {
					return fail(fmt.Errorf("read layer: %w", err))
				}
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	if err := writeTree(ctx, dir, t); err != nil {
		return fail(err)
	}
	return nil
}

// GC removes every cached layer no container uses, and the folders of
// builds that died. A layer is in use when inUse names its digest, when an
// overlay mounted anywhere has it as lowerdir, or when a container folder
// under the state root (containers/*/overlay/layer) records it: a
// container whose overlay is unmounted (after a reboot) keeps its layer
// for its upper folder. It returns the digests of the removed layers.
func (d *Driver) GC(inUse map[string]bool) (removed []string, err error) {
	if d.readOnly {
		return nil, fmt.Errorf("gc: the rootfs driver is read-only")
	}
	// Earlier versions of hutch kept python's answers here; nothing reads
	// them now (python.go).
	os.RemoveAll(filepath.Join(d.stateRoot, "cache", "python"))
	if _, err := os.Stat(d.layersDir()); os.IsNotExist(err) {
		return nil, nil // no cache yet: nothing to make
	}
	release, err := d.lockLayers(unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer release()
	used := map[string]bool{}
	for k, v := range inUse {
		if v {
			used[strings.TrimPrefix(k, "sha256:")] = true
		}
	}
	ms, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("overlay"))
	if err != nil {
		return nil, fmt.Errorf("gc: read mountinfo: %w", err)
	}
	for _, m := range ms {
		for _, l := range lowersOf(m) {
			if filepath.Dir(l) == d.layersDir() {
				used[filepath.Base(l)] = true
			}
		}
	}
	recs, _ := filepath.Glob(filepath.Join(d.stateRoot, "containers", "*", "overlay", "layer"))
	for _, rec := range recs {
		// One digest per line: the recipe's layer, then an image's.
		if b, err := os.ReadFile(rec); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				used[strings.TrimPrefix(l, "sha256:")] = true
			}
		}
	}
	ents, err := os.ReadDir(d.layersDir())
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if _, err := layerHex("sha256:" + name); err != nil || used[name] || !e.IsDir() {
			continue
		}
		// Renamed first: a half-removed layer never looks complete, and
		// a gc that dies midway leaves a temporary folder the next
		// build removes.
		p := filepath.Join(d.layersDir(), name)
		tmp := filepath.Join(d.layersDir(), tmpPrefix+"gc-"+name)
		if err := os.Rename(p, tmp); err != nil {
			errs = append(errs, fmt.Errorf("gc: layer sha256:%s: %w", name, err))
			continue
		}
		if err := os.RemoveAll(tmp); err != nil {
			errs = append(errs, fmt.Errorf("gc: layer sha256:%s: %w", name, err))
			continue
		}
		removed = append(removed, "sha256:"+name)
	}
	if _, err := d.cleanTemps(); err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}
