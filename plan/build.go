package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hutch/spec"
)

// Desired is what the host should hold for a manifest: its containers, and
// its networks and links, each sorted by name.
type Desired struct {
	Containers []*Container
	Units      []*Unit
}

// Container is one container's desired state: the OCI runtime-spec
// configuration its bundle's config.json holds, and the host resources OCI has
// no words for, in Kinds order (rootfs, netns, veths, addresses, routes,
// cgroup, process).
type Container struct {
	Name      string
	Source    Source
	Spec      *specs.Spec
	Resources []Resource
}

// Source is the manifest document a container came from.
type Source struct {
	File string `json:"file"`
	Doc  int    `json:"doc"` // index of the document in the file, from 0
}

// Kinds are the resource kinds in the order a container needs them; drivers
// are registered, and a container's resources listed, in this order.
var Kinds = []Kind{KindRootfs, KindNetns, KindVeth, KindAddress, KindRoute, KindCgroup, KindProcess}

// Resources returns every resource of every container, container by container.
func (d *Desired) Resources() []Resource {
	var rs []Resource
	for _, c := range d.Containers {
		rs = append(rs, c.Resources...)
	}
	for _, u := range d.Units {
		rs = append(rs, u.Resources...)
	}
	return rs
}

// Container returns the desired container of that name, or nil.
func (d *Desired) Container(name string) *Container {
	for _, c := range d.Containers {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Build turns a manifest into desired state. It is pure: it reads nothing on
// the host (Options only supplies paths and the bytes of seccomp profile
// files the caller has read; see Options.SeccompProfiles and SeccompPaths).
//
// The manifest must have passed spec.Validate; Build applies spec.Defaults
// itself, to a copy, so the caller's manifest is left as it was. Values that
// Build cannot convert are reported as errors naming the container and the
// field, with its place in the file (a *FieldError), rather than trusted;
// so are two containers with the same name or two resources with the same
// ID (a netns or a host interface name used twice). spec.Validate refuses
// all of these first.
func Build(m *spec.Manifest, o Options) (*Desired, error) {
	d := &Desired{}
	owner := map[string]string{} // resource ID -> container
	lab, err := buildLab(m, o)
	if err != nil {
		return nil, err
	}
	if d.Units, err = lab.buildUnits(m); err != nil {
		return nil, err
	}
	for _, u := range d.Units {
		for _, r := range u.Resources {
			owner[r.ID()] = u.Name
		}
	}
	for _, sc := range m.Containers {
		c, err := buildContainer(sc, o, lab)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				placed(sc.Source, fe)
			}
			return nil, fmt.Errorf("container %s: %w", sc.Metadata.Name, err)
		}
		if prev := d.Container(c.Name); prev != nil {
			return nil, fmt.Errorf("container %s: defined twice (%s doc %d and %s doc %d)",
				c.Name, prev.Source.File, prev.Source.Doc, c.Source.File, c.Source.Doc)
		}
		for _, r := range c.Resources {
			if other, ok := owner[r.ID()]; ok {
				if other == c.Name {
					return nil, fmt.Errorf("container %s: %s is declared twice", c.Name, r.ID())
				}
				return nil, fmt.Errorf("container %s: %s already belongs to container %s", c.Name, r.ID(), other)
			}
			owner[r.ID()] = c.Name
		}
		d.Containers = append(d.Containers, c)
	}
	sort.Slice(d.Containers, func(i, j int) bool { return d.Containers[i].Name < d.Containers[j].Name })
	return d, nil
}

// SeccompPaths lists the seccomp profile files the manifest names, sorted and
// without repeats: the caller reads them into Options.SeccompProfiles before
// Build.
func SeccompPaths(m *spec.Manifest) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range m.Containers {
		p := c.Spec.Security.Seccomp
		if p == "" || p == "default" || p == "unconfined" || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// defaulted returns a copy of c with the defaults of its image (if any,
// see withImage) and spec.Defaults applied. Defaults writes through the
// pointers of the spec (network, logs), so those are copied too.
func defaulted(c *spec.Container, img *Image) (*spec.Container, error) {
	cp := *c
	s := &cp.Spec
	if s.Network != nil {
		n := *s.Network
		s.Network = &n
	}
	if s.Logs != nil {
		l := *s.Logs
		s.Logs = &l
	}
	if s.RestartPolicy != nil {
		r := *s.RestartPolicy
		s.RestartPolicy = &r
	}
	s.Process.Env = append([]string(nil), s.Process.Env...)
	s.Process.Args = append([]string(nil), s.Process.Args...)
	s.Process.AdditionalGids = append([]uint32(nil), s.Process.AdditionalGids...)
	if img != nil {
		if err := withImage(&cp, img); err != nil {
			return nil, err
		}
	}
	spec.Defaults(&cp)
	return &cp, nil
}

func buildContainer(in *spec.Container, o Options, lab *lab) (*Container, error) {
	img, err := imageOf(in, o)
	if err != nil {
		return nil, err
	}
	sc, err := defaulted(in, img)
	if err != nil {
		return nil, err
	}
	name := sc.Metadata.Name
	c := &Container{Name: name, Source: Source{File: sc.Source.File, Doc: sc.Source.Doc}}

	rootfs, err := buildRootfs(sc, o)
	if err != nil {
		return nil, err
	}
	if img != nil {
		rootfs.Image = rootfsImage(img)
	}
	net, err := buildNetwork(sc, lab)
	if err != nil {
		return nil, err
	}
	cg, err := buildCgroup(sc, o)
	if err != nil {
		return nil, err
	}
	if c.Spec, err = buildOCI(sc, o, cg); err != nil {
		return nil, err
	}
	net = append(net, lab.containerFiles(sc, o, c.Spec, rootfs)...)
	proc, err := buildProcess(sc, o, c.Spec, rootfs)
	if err != nil {
		return nil, err
	}
	c.Resources = append(c.Resources, rootfs)
	c.Resources = append(c.Resources, net...)
	c.Resources = append(c.Resources, cg)
	for _, r := range c.Resources {
		if hostSide(r) {
			continue // the process starts without them
		}
		proc.Needs = append(proc.Needs, r.ID())
	}
	for _, d := range proc.After {
		proc.Needs = append(proc.Needs, ProcessID(d.Container))
	}
	sort.Strings(proc.Needs)
	c.Resources = append(c.Resources, proc)
	return c, nil
}

// buildRootfs is the rootfs recipe. Dirs always hold the mount points the
// runtime needs (/proc, /sys, /dev) and /tmp, plus every mount destination of
// the manifest, so the runtime never has to create a folder inside the
// container's root (where a symlink could redirect it).
func buildRootfs(sc *spec.Container, o Options) (*Rootfs, error) {
	r := &Rootfs{
		Container: sc.Metadata.Name,
		Bundle:    o.BundleDir(sc.Metadata.Name),
		Binaries:  append([]string(nil), sc.Spec.Rootfs.Binaries...),
		Python:    sc.Spec.Rootfs.Python,
		ReadOnly:  sc.Spec.Rootfs.ReadOnly,
	}
	for _, cp := range sc.Spec.Rootfs.Copy {
		to := cp.To
		if to == "" {
			to = cp.From
		}
		r.Copies = append(r.Copies, Copy{From: cp.From, To: to})
	}
	for i, f := range sc.Spec.Rootfs.Files {
		mode := uint32(0o644)
		if f.Mode != "" {
			m, err := spec.ParseMode(f.Mode)
			if err != nil {
				return nil, atField(fmt.Sprintf("spec.rootfs.files[%d].mode", i), err)
			}
			mode = m
		}
		sum := sha256.Sum256([]byte(f.Content))
		r.Files = append(r.Files, InlineFile{Path: f.Path, Mode: mode, Content: f.Content,
			Digest: "sha256:" + hex.EncodeToString(sum[:])})
	}
	dirs := map[string]uint32{"/proc": 0o555, "/sys": 0o555, "/dev": 0o755, "/tmp": 0o1777}
	for _, m := range sc.Spec.Mounts {
		if _, ok := dirs[m.Destination]; !ok {
			dirs[m.Destination] = 0o755
		}
	}
	for i, d := range sc.Spec.Rootfs.Dirs {
		mode := uint32(0o755)
		if d.Mode != "" {
			m, err := spec.ParseMode(d.Mode)
			if err != nil {
				return nil, atField(fmt.Sprintf("spec.rootfs.dirs[%d].mode", i), err)
			}
			mode = m
		}
		dirs[d.Path] = mode // the manifest's mode wins
	}
	for p, m := range dirs {
		r.Dirs = append(r.Dirs, Dir{Path: p, Mode: m})
	}
	sort.Slice(r.Dirs, func(i, j int) bool { return r.Dirs[i].Path < r.Dirs[j].Path })
	return r, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortByID(rs []Resource) {
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].ID() < rs[j].ID() })
}

// defaultCPUPeriod is the CFS period the kernel uses unless told otherwise
// (cpu.cfs_period_us, cpu.max), in microseconds.
const defaultCPUPeriod = 100000

// buildCgroup converts the resources block: memory in bytes, CPU bandwidth
// as quota per period (cores x period when given as cores), weight, pids and
// cpuset.
func buildCgroup(sc *spec.Container, o Options) (*Cgroup, error) {
	rs := sc.Spec.Resources
	cg := &Cgroup{Container: sc.Metadata.Name, Path: o.CgroupPath(sc.Metadata.Name), Pids: rs.Pids}
	var err error
	if rs.Memory != "" {
		if cg.Memory.Limit, err = spec.ParseMemory(rs.Memory); err != nil {
			return nil, atField("spec.resources.memory", err)
		}
	}
	switch rs.MemorySwap {
	case "":
	case "-1":
		cg.Memory.Swap = -1
	default:
		if cg.Memory.Swap, err = spec.ParseMemory(rs.MemorySwap); err != nil {
			return nil, atField("spec.resources.memorySwap", err)
		}
	}
	cg.CPU.Period = rs.CPUPeriod
	switch {
	case rs.CPUQuota != 0:
		cg.CPU.Quota = rs.CPUQuota
	case rs.CPU != "":
		milli, err := spec.ParseCPU(rs.CPU)
		if err != nil {
			return nil, atField("spec.resources.cpu", err)
		}
		if cg.CPU.Period == 0 {
			cg.CPU.Period = defaultCPUPeriod
		}
		cg.CPU.Quota = milli * int64(cg.CPU.Period) / 1000
	}
	if cg.CPU.Quota != 0 && cg.CPU.Period == 0 {
		cg.CPU.Period = defaultCPUPeriod
	}
	cg.CPU.Weight = rs.CPUWeight
	cg.CPU.Cpus = rs.Cpuset.Cpus
	cg.CPU.Mems = rs.Cpuset.Mems
	return cg, nil
}

// buildProcess is the supervised process: its policies, and the digest of
// what forces a restart when it changes.
func buildProcess(sc *spec.Container, o Options, s *specs.Spec, rootfs *Rootfs) (*Process, error) {
	p := &Process{
		Container:  sc.Metadata.Name,
		Bundle:     o.BundleDir(sc.Metadata.Name),
		Restart:    RestartPolicy{Policy: sc.Spec.RestartPolicy.Policy, MaxRetries: sc.Spec.RestartPolicy.MaxRetries},
		StopSignal: signalName(sc.Spec.Process.StopSignal),
	}
	var err error
	if p.StopTimeout, err = time.ParseDuration(sc.Spec.Process.StopTimeout); err != nil {
		return nil, atField("spec.process.stopTimeout", err)
	}
	if p.Logs.MaxSize, err = spec.ParseMemory(sc.Spec.Logs.MaxSize); err != nil {
		return nil, atField("spec.logs.maxSize", err)
	}
	p.Logs.MaxFiles = sc.Spec.Logs.MaxFiles
	if p.StartWindow, err = time.ParseDuration(sc.Spec.Process.StartWindow); err != nil {
		return nil, atField("spec.process.startWindow", err)
	}
	if p.Health, err = buildHealth(sc.Spec.HealthCheck); err != nil {
		return nil, err
	}
	for _, d := range sc.Spec.DependsOn {
		p.After = append(p.After, Dependency{Container: d.Name, Bundle: o.BundleDir(d.Name), Condition: d.Condition})
	}
	if p.Digest, err = Digest(s, rootfs); err != nil {
		return nil, err
	}
	return p, nil
}

// buildHealth parses a health check whose defaults are filled in.
func buildHealth(h *spec.HealthCheck) (*HealthCheck, error) {
	if h == nil {
		return nil, nil
	}
	out := &HealthCheck{Retries: h.Retries}
	switch {
	case h.HTTP != nil:
		out.Kind, out.Port, out.Path = "http", h.HTTP.Port, h.HTTP.Path
	case h.TCP != nil:
		out.Kind, out.Port = "tcp", h.TCP.Port
	default:
		out.Kind, out.Command = "exec", h.Exec
	}
	for _, d := range []struct {
		field string
		value string
		to    *time.Duration
	}{
		{"interval", h.Interval, &out.Interval},
		{"startInterval", h.StartInterval, &out.StartInterval},
		{"timeout", h.Timeout, &out.Timeout},
		{"startPeriod", h.StartPeriod, &out.StartPeriod},
	} {
		var err error
		if *d.to, err = time.ParseDuration(d.value); err != nil {
			return nil, atField("spec.healthCheck."+d.field, err)
		}
	}
	return out, nil
}

// Digest is "sha256:<hex>" of the canonical JSON of the OCI configuration and
// the rootfs recipe: what the process must be restarted for. The
// configuration's linux.resources are left out: the cgroup driver changes
// those limits in place on the running container, so they never force a
// restart. (Canonical: encoding/json writes struct fields in declaration
// order and map keys sorted, without HTML escaping here.)
func Digest(s *specs.Spec, rootfs *Rootfs) (string, error) {
	cp := *s
	if s.Linux != nil {
		l := *s.Linux
		l.Resources = nil
		cp.Linux = &l
	}
	h := sha256.New()
	e := json.NewEncoder(h)
	e.SetEscapeHTML(false)
	if err := e.Encode(struct {
		Config *specs.Spec `json:"config"`
		Rootfs *Rootfs     `json:"rootfs"`
	}{&cp, rootfs}); err != nil {
		return "", fmt.Errorf("digest: %w", err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// parseUser reads "uid" or "uid:gid"; a lone uid runs with gid 0, as Docker
// does when /etc/passwd has no entry. Numbers only: names would need the
// rootfs's /etc/passwd, which plan does not read.
func parseUser(u string) (uid, gid uint32, err error) {
	us, gs, hasGid := strings.Cut(u, ":")
	n, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("%q: expected a numeric uid or uid:gid", u)
	}
	uid = uint32(n)
	if hasGid {
		g, err := strconv.ParseUint(gs, 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("%q: expected a numeric uid or uid:gid", u)
		}
		gid = uint32(g)
	}
	return uid, gid, nil
}

// signalName writes a stop signal as the kernel names it: "term", "TERM"
// and "15" give "SIGTERM". Real-time signals (32-64) stay numbers.
func signalName(s string) string {
	if n, err := strconv.Atoi(s); err == nil {
		if n >= 1 && n <= len(spec.SignalNames) {
			return spec.SignalNames[n-1] // x86 and asm-generic numbering
		}
		return s
	}
	s = strings.ToUpper(s)
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	return s
}
