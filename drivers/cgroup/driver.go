//go:build linux

package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"hutch/plan"
)

// DefaultParent is the cgroup every container's cgroup is made under.
const DefaultParent = "hutch"

// Driver manages containers' cgroups under one parent, on the hierarchy
// detected under its root. It is the reconcile driver of plan.KindCgroup.
type Driver struct {
	root   string
	parent string
	*layout
	// mkdir and rmdir make and remove a cgroup folder. On cgroupfs the kernel
	// fills a new folder with interface files and rmdir removes them with it;
	// tests on a plain folder tree replace these to do the same.
	mkdir func(dir string) error
	rmdir func(dir string) error
}

// New detects the cgroup hierarchy under root ("" = /sys/fs/cgroup) and
// returns a driver making cgroups under parent ("" = "hutch"). For the real
// root it reads the cgroup mounts from /proc/self/mountinfo; for any other
// root (a test tree) it reads them from the shape of the folders (see
// NewFromMounts to give them explicitly).
func New(root, parent string) (*Driver, error) {
	if root == "" {
		root = DefaultRoot
	}
	root = filepath.Clean(root)
	var mounts []Mount
	if root == DefaultRoot {
		f, err := os.Open("/proc/self/mountinfo")
		if err != nil {
			return nil, fmt.Errorf("cgroup root %s: %w", root, err)
		}
		mounts, err = ParseMountinfo(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("cgroup root %s: %w", root, err)
		}
	} else {
		var err error
		if mounts, err = mountsFromShape(root); err != nil {
			return nil, err
		}
	}
	return NewFromMounts(root, parent, mounts)
}

// NewFromMounts is New with the cgroup mounts given (ParseMountinfo reads
// them from mountinfo text) instead of read from the host.
func NewFromMounts(root, parent string, mounts []Mount) (*Driver, error) {
	if root == "" {
		root = DefaultRoot
	}
	if parent == "" {
		parent = DefaultParent
	}
	root = filepath.Clean(root)
	parent = filepath.Clean(parent)
	if filepath.IsAbs(parent) || parent == "." || slices.Contains(strings.Split(parent, "/"), "..") {
		//lint:ignore ST1005 the message ends with the path element "..", not a full stop
		return nil, fmt.Errorf("cgroup parent %q: must be a relative path without ..", parent)
	}
	l, err := detect(root, mounts)
	if err != nil {
		return nil, err
	}
	return &Driver{
		root: root, parent: parent, layout: l,
		mkdir: func(dir string) error { return unix.Mkdir(dir, 0o755) },
		rmdir: unix.Rmdir,
	}, nil
}

// Version says which cgroup layout the host has: "v1", "v2" or "hybrid".
func (d *Driver) Version() string { return d.version }

// Parent is the cgroup, relative to each hierarchy's root, that holds every
// container's cgroup.
func (d *Driver) Parent() string { return d.parent }

// ctl says where a controller lives: the mount point of its hierarchy and
// whether that is cgroup2. A hybrid host uses v1 for every controller v1 has
// and cgroup2 only for the others.
func (d *Driver) ctl(name string) (mount string, v2 bool, ok bool) {
	if m, ok := d.v1[name]; ok {
		return m, false, true
	}
	if d.unified == "" {
		return "", false, false
	}
	switch name {
	case "cpuacct", "freezer":
		// cgroup2 has no such controllers: CPU usage (cpu.stat) and freezing
		// (cgroup.freeze) are core files of every cgroup2 folder.
		return d.unified, true, d.version == V2
	}
	return d.unified, true, d.v2ctrl[name]
}

// mounts lists the hierarchies a container's cgroup is made in, each once:
// the v1 mounts of the wanted controllers (cpu and cpuacct are often one
// mount) and the cgroup2 mount. On a hybrid host the cgroup2 folder has no
// limits, but putting the process there too gives hutch cgroup.kill and
// cgroup.events for it.
func (d *Driver) mounts() []string {
	var ms []string
	for _, c := range wanted {
		if m, ok := d.v1[c]; ok && !slices.Contains(ms, m) {
			ms = append(ms, m)
		}
	}
	if d.unified != "" {
		ms = append(ms, d.unified)
	}
	return ms
}

// v2Enabled lists the limit controllers served by cgroup2, which must be
// enabled in the cgroup.subtree_control of every ancestor of the cgroup.
func (d *Driver) v2Enabled() []string {
	var cs []string
	for _, c := range []string{"cpu", "cpuset", "memory", "pids"} {
		if _, v2, ok := d.ctl(c); ok && v2 {
			cs = append(cs, c)
		}
	}
	return cs
}

// Dirs returns, for a cgroup path, the absolute folder of each controller
// hutch uses that the host has, plus "unified" for the cgroup2 folder when
// there is one. It only computes paths; the folders may not exist.
func (d *Driver) Dirs(path string) map[string]string {
	dirs := map[string]string{}
	for _, c := range wanted {
		if m, _, ok := d.ctl(c); ok {
			dirs[c] = filepath.Join(m, path)
		}
	}
	if d.unified != "" {
		dirs["unified"] = filepath.Join(d.unified, path)
	}
	return dirs
}

// Exists says whether the cgroup exists in every hierarchy hutch uses.
func (d *Driver) Exists(path string) bool {
	n, all := d.present(path)
	return n > 0 && n == all
}

// present counts the hierarchies where the cgroup's folder exists.
func (d *Driver) present(path string) (n, all int) {
	for _, m := range d.mounts() {
		if fi, err := os.Stat(filepath.Join(m, path)); err == nil && fi.IsDir() {
			n++
		}
	}
	return n, len(d.mounts())
}

// own checks that path names a cgroup strictly inside the parent: hutch
// never creates, writes, kills or removes anything else.
func (d *Driver) own(path string) error {
	clean := filepath.Clean(path)
	if path == "" || filepath.IsAbs(path) || clean != path ||
		slices.Contains(strings.Split(path, "/"), "..") ||
		!strings.HasPrefix(path, d.parent+"/") {
		return fmt.Errorf("cgroup %q: not a cgroup under the parent %s", path, d.parent)
	}
	return nil
}

// Kind is plan.KindCgroup.
func (d *Driver) Kind() plan.Kind { return plan.KindCgroup }

func asCgroup(r plan.Resource) (*plan.Cgroup, error) {
	cg, ok := r.(*plan.Cgroup)
	if !ok || cg == nil {
		return nil, fmt.Errorf("cgroup driver: resource %T is not a *plan.Cgroup", r)
	}
	return cg, nil
}

// Observe reads the cgroup's limits back from the kernel's files. It returns
// nil when the cgroup is missing from any hierarchy hutch uses (never made,
// or left half-made by an interrupted apply, which Apply then completes).
func (d *Driver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	cg, err := asCgroup(want)
	if err != nil {
		return nil, err
	}
	if err := d.own(cg.Path); err != nil {
		return nil, err
	}
	if !d.Exists(cg.Path) {
		return nil, nil
	}
	got := &plan.Cgroup{Container: cg.Container, Path: cg.Path}
	if err := d.read(got, cg); err != nil {
		return nil, fmt.Errorf("cgroup %s: observe: %w", cg.Path, err)
	}
	return got, nil
}

// Diff compares the observed cgroup with the desired one after normalising
// what the kernel rewrites (defaults, page rounding, cpu list syntax). The
// kernel changes every one of these files in place, on v1 and v2, so no
// field forces a replace.
func (d *Driver) Diff(got, want plan.Resource) (fields, forceReplace []string) {
	g, gerr := asCgroup(got)
	w, werr := asCgroup(want)
	if gerr != nil || werr != nil {
		return []string{"path"}, []string{"path"}
	}
	if g.Path != w.Path {
		// A different path is another cgroup.
		return []string{"path"}, []string{"path"}
	}
	gn, wn := normalize(*g), normalize(*w)
	add := func(name string, differ bool) {
		if differ {
			fields = append(fields, name)
		}
	}
	add("memory.limit", gn.Memory.Limit != wn.Memory.Limit)
	add("memory.swap", gn.Memory.Swap != wn.Memory.Swap)
	add("cpu.quota", gn.CPU.Quota != wn.CPU.Quota)
	add("cpu.period", gn.CPU.Period != wn.CPU.Period)
	add("cpu.weight", gn.CPU.Weight != wn.CPU.Weight)
	add("cpu.cpus", gn.CPU.Cpus != wn.CPU.Cpus)
	add("cpu.mems", gn.CPU.Mems != wn.CPU.Mems)
	add("pids", gn.Pids != wn.Pids)
	return fields, nil
}

// pageSize is the unit the kernel rounds memory limits down to
// (page_counter_memparse).
var pageSize = int64(os.Getpagesize())

// normalize puts a cgroup's values in the form the kernel reads them back.
func normalize(c plan.Cgroup) plan.Cgroup {
	page := func(v int64) int64 {
		if v <= 0 {
			return 0
		}
		return v / pageSize * pageSize
	}
	c.Memory.Limit = page(c.Memory.Limit)
	if c.Memory.Swap < 0 {
		c.Memory.Swap = 0 // unlimited is the kernel default
	}
	c.Memory.Swap = page(c.Memory.Swap)
	if c.CPU.Quota < 0 {
		c.CPU.Quota = 0
	}
	if c.CPU.Period == 0 {
		c.CPU.Period = 100000
	}
	if c.CPU.Weight == 0 {
		c.CPU.Weight = 100
	}
	c.CPU.Cpus = cpuList(c.CPU.Cpus)
	c.CPU.Mems = cpuList(c.CPU.Mems)
	if c.Pids < 0 {
		c.Pids = 0
	}
	return c
}

// Apply creates the cgroup (and the parent) where missing, then writes every
// limit of ch.After.
func (d *Driver) Apply(ctx context.Context, ch *plan.Change) error {
	cg, err := asCgroup(ch.After)
	if err != nil {
		return err
	}
	if err := d.own(cg.Path); err != nil {
		return err
	}
	if err := d.check(cg); err != nil {
		return fmt.Errorf("cgroup %s: %w", cg.Path, err)
	}
	if err := d.create(cg.Path); err != nil {
		return fmt.Errorf("cgroup %s: create: %w", cg.Path, err)
	}
	if err := d.write(cg); err != nil {
		return fmt.Errorf("cgroup %s: %w", cg.Path, err)
	}
	return nil
}

// check refuses values the kernel would reject or that need a controller
// the host lacks, before anything is created.
func (d *Driver) check(cg *plan.Cgroup) error {
	m := cg.Memory
	if m.Swap > 0 {
		if m.Limit <= 0 {
			return errors.New("memory.swap: a swap limit needs a memory limit")
		}
		if m.Swap < m.Limit {
			return fmt.Errorf("memory.swap: %d is below the memory limit %d (swap is memory plus swap)", m.Swap, m.Limit)
		}
	}
	if cg.CPU.Weight > 10000 {
		return fmt.Errorf("cpu.weight: %d is above 10000", cg.CPU.Weight)
	}
	if p := cg.CPU.Period; p != 0 && (p < 1000 || p > 1000000) {
		return fmt.Errorf("cpu.period: %d µs is outside 1000-1000000", p)
	}
	if q := cg.CPU.Quota; q > 0 && q < 1000 {
		return fmt.Errorf("cpu.quota: %d µs is below 1000", q)
	}
	need := func(ctrl string, used bool) error {
		if _, _, ok := d.ctl(ctrl); used && !ok {
			return d.missingError(ctrl)
		}
		return nil
	}
	return errors.Join(
		need("memory", m.Limit > 0 || m.Swap != 0),
		need("cpu", cg.CPU.Quota > 0 || cg.CPU.Period != 0 || cg.CPU.Weight != 0),
		need("cpuset", cg.CPU.Cpus != "" || cg.CPU.Mems != ""),
		need("pids", cg.Pids > 0),
	)
}

// create makes the folder of every level from the parent down to path in
// each hierarchy. On cgroup2 it first enables the limit controllers in the
// cgroup.subtree_control of each ancestor (a controller's files only appear
// in a child when the parent enables it). A v1 cpuset starts with empty
// cpuset.cpus and cpuset.mems, and no process can join it until they are
// set: each new level copies its parent's, as runc does.
//
// A concurrent Delete of another container may remove an empty parent
// between two mkdirs; create then starts again.
func (d *Driver) create(path string) error {
	var err error
	for range 3 {
		if err = d.createOnce(path); !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return err
}

func (d *Driver) createOnce(path string) error {
	parts := strings.Split(path, "/")
	cpuset, cpusetV2, _ := d.ctl("cpuset")
	for _, m := range d.mounts() {
		for i := range parts {
			dir := filepath.Join(m, filepath.Join(parts[:i+1]...))
			if m == d.unified {
				if err := d.enable(filepath.Dir(dir)); err != nil {
					return err
				}
			}
			if err := d.mkdir(dir); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("mkdir %s: %w", dir, err)
			}
			if m == cpuset && !cpusetV2 {
				if err := inheritCpuset(dir); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// enable turns on, in dir's cgroup.subtree_control, the cgroup2 controllers
// hutch sets limits with, writing only those not yet enabled.
func (d *Driver) enable(dir string) error {
	want := d.v2Enabled()
	if len(want) == 0 {
		return nil
	}
	cur, err := readFile(dir, "cgroup.subtree_control")
	if err != nil {
		return err
	}
	on := map[string]bool{}
	for _, c := range strings.Fields(cur) {
		on[strings.TrimPrefix(c, "+")] = true
	}
	var add []string
	for _, c := range want {
		if !on[c] {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return writeFile(dir, "cgroup.subtree_control", strings.Join(add, " "))
}

// inheritCpuset copies cpuset.cpus and cpuset.mems from the parent folder
// into dir where they are empty.
func inheritCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := readFile(dir, f)
		if err != nil {
			return err
		}
		if cur != "" {
			continue
		}
		p, err := readFile(filepath.Dir(dir), f)
		if err != nil {
			return err
		}
		if err := writeFile(dir, f, p); err != nil {
			return err
		}
	}
	return nil
}

// Delete kills every process left in the cgroup, then removes its folder
// (and any child cgroups a process made) in every hierarchy. It succeeds
// when the cgroup is already gone. The parent is removed too when it is
// empty and its name carries hutch's prefix; otherwise it stays.
func (d *Driver) Delete(ctx context.Context, r plan.Resource) error {
	cg, err := asCgroup(r)
	if err != nil {
		return err
	}
	return d.remove(ctx, cg.Path)
}

func (d *Driver) remove(ctx context.Context, path string) error {
	if err := d.own(path); err != nil {
		return err
	}
	if n, _ := d.present(path); n == 0 {
		return d.removeParent()
	}
	if err := d.killAll(ctx, path); err != nil {
		return fmt.Errorf("cgroup %s: delete: %w", path, err)
	}
	var errs []error
	for _, m := range d.mounts() {
		if err := d.removeTree(filepath.Join(m, path)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cgroup %s: delete: %w", path, err)
	}
	return d.removeParent()
}

// removeTree removes a cgroup folder after its child cgroups, deepest
// first: rmdir of a cgroup with children fails with EBUSY.
func (d *Driver) removeTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, bare(err))
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := d.removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := d.rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("rmdir %s: %w", dir, err)
	}
	return nil
}

// removeParent removes the parent's folders, deepest level first, where they
// are empty and named with hutch's prefix. A parent still holding another
// container's cgroup answers EBUSY (v1) or ENOTEMPTY and stays.
func (d *Driver) removeParent() error {
	parts := strings.Split(d.parent, "/")
	for i := len(parts); i > 0; i-- {
		if !strings.HasPrefix(parts[i-1], "hutch") {
			return nil
		}
		rel := filepath.Join(parts[:i]...)
		for _, m := range d.mounts() {
			err := d.rmdir(filepath.Join(m, rel))
			switch {
			case err == nil, errors.Is(err, unix.ENOENT):
			case errors.Is(err, unix.EBUSY), errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST):
				return nil
			default:
				return fmt.Errorf("cgroup parent %s: rmdir %s: %w", d.parent, filepath.Join(m, rel), err)
			}
		}
	}
	return nil
}
