package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
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

// defaulted returns a copy of c with spec.Defaults applied. Defaults writes
// through the pointers of the spec (network, logs), so those are copied too.
func defaulted(c *spec.Container) *spec.Container {
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
	spec.Defaults(&cp)
	return &cp
}

func buildContainer(in *spec.Container, o Options, lab *lab) (*Container, error) {
	sc := defaulted(in)
	name := sc.Metadata.Name
	c := &Container{Name: name, Source: Source{File: sc.Source.File, Doc: sc.Source.Doc}}

	rootfs, err := buildRootfs(sc, o)
	if err != nil {
		return nil, err
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

// buildNetwork makes the netns, a veth pair per interface, the addresses on
// both ends, the manifest's routes and the default routes of interfaces that
// ask for one. No network block means no host resources: the container gets a
// new, empty network namespace from the runtime.
func buildNetwork(sc *spec.Container, lab *lab) ([]Resource, error) {
	n := sc.Spec.Network
	if n == nil {
		return nil, nil
	}
	name := sc.Metadata.Name
	ns := &Netns{Container: name, Name: n.Namespace}
	out := []Resource{ns}
	var veths, addrs, routes []Resource
	// inside are the container-side addresses, to find the link and the
	// address that make a gateway reachable.
	type ifAddr struct {
		iface  string
		veth   string
		prefix netip.Prefix
		id     string
	}
	var inside []ifAddr
	hostFirst := map[string][2]netip.Prefix{} // interface -> first host address, v4 and v6
	for i, it := range n.Interfaces {
		path := fmt.Sprintf("spec.network.interfaces[%d]", i)
		v := &Veth{
			Container: name,
			Host:      LinkEnd{Name: it.Host.Name, MAC: strings.ToLower(it.Host.MAC), MTU: it.MTU},
			Peer:      LinkEnd{Name: it.Name, MAC: strings.ToLower(it.MAC), MTU: it.MTU},
			Netns:     n.Namespace,
		}
		addrList := it.Addresses
		var onNet *labNet
		if it.Network != "" {
			// Plugged into a network's bridge: hutch names the host end;
			// the addresses are the static ones and IPAM's.
			if onNet = lab.nets[it.Network]; onNet == nil {
				return nil, fieldErrorf(path+".network", "no network %q in the manifest", it.Network)
			}
			v.Host.Name = spec.AttachName(name, it.Name)
			v.Bridge = onNet.bridge
			if it.MTU == 0 {
				v.Host.MTU, v.Peer.MTU = onNet.doc.Spec.MTU, onNet.doc.Spec.MTU
			}
			addrList = nil
			for _, p := range lab.addrs[name+"/"+it.Name] {
				addrList = append(addrList, p.String())
			}
		}
		veths = append(veths, v)
		for j, a := range addrList {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, atField(fmt.Sprintf("%s.addresses[%d]", path, j), err)
			}
			ad := &Address{Container: name, Netns: n.Namespace, Link: it.Name, CIDR: p.String(), Veth: v.ID()}
			addrs = append(addrs, ad)
			inside = append(inside, ifAddr{iface: it.Name, veth: v.ID(), prefix: p, id: ad.ID()})
		}
		var first [2]netip.Prefix
		for j, a := range it.Host.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, atField(fmt.Sprintf("%s.host.addresses[%d]", path, j), err)
			}
			addrs = append(addrs, &Address{Container: name, Netns: HostNetns, Link: it.Host.Name, CIDR: p.String(), Veth: v.ID()})
			fam := 0
			if p.Addr().Is6() {
				fam = 1
			}
			if !first[fam].IsValid() {
				first[fam] = p
			}
		}
		if onNet != nil {
			// The default routes go via the network's gateways.
			for k, gw := range onNet.gateways {
				fam := 0
				if gw.Is6() {
					fam = 1
				}
				first[fam] = netip.PrefixFrom(gw, onNet.subnets[k].Bits())
			}
		}
		hostFirst[it.Name] = first
	}
	// The container's ends of links: their addresses, and the routes that
	// go through them.
	ends := map[string]string{} // interface -> link ID
	for _, le := range lab.linkEnds(name) {
		ends[le.e.Interface] = le.id
		for _, a := range le.e.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("link %s: %s: %w", le.id, a, err)
			}
			ad := &Address{Container: name, Netns: n.Namespace, Link: le.e.Interface, CIDR: p.String(), Veth: le.id}
			addrs = append(addrs, ad)
			inside = append(inside, ifAddr{iface: le.e.Interface, veth: le.id, prefix: p, id: ad.ID()})
		}
	}
	// reach finds the container-side address whose subnet holds gw, on dev
	// when dev is given.
	reach := func(gw netip.Addr, dev string) (ifAddr, bool) {
		for _, a := range inside {
			if (dev == "" || a.iface == dev) && a.prefix.Masked().Contains(gw) {
				return a, true
			}
		}
		return ifAddr{}, false
	}
	vethOf := func(dev string) string {
		for i, it := range n.Interfaces {
			if it.Name == dev {
				return veths[i].ID()
			}
		}
		return ends[dev]
	}
	for i, rt := range n.Routes {
		path := fmt.Sprintf("spec.network.routes[%d]", i)
		r := &Route{Container: name, Netns: n.Namespace, Dev: rt.Dev, Metric: rt.Metric}
		var gw netip.Addr
		if rt.Via != "" {
			var err error
			if gw, err = netip.ParseAddr(rt.Via); err != nil {
				return nil, atField(path+".via", err)
			}
			r.Via = gw.String()
		}
		switch {
		case rt.To == "default" && gw.Is6():
			r.Dst = "::/0"
		case rt.To == "default":
			r.Dst = "0.0.0.0/0"
		default:
			p, err := netip.ParsePrefix(rt.To)
			if err != nil {
				return nil, atField(path+".to", err)
			}
			r.Dst = p.Masked().String()
		}
		needs := map[string]bool{}
		if gw.IsValid() {
			a, ok := reach(gw, rt.Dev)
			switch {
			case ok:
				r.Dev = a.iface
				needs[a.veth], needs[a.id] = true, true
			case linkLocalVia(gw, rt.Dev):
				// An IPv6 link-local gateway (fe80::/10) is on the link of
				// dev, which every IPv6 interface has its own fe80::/64
				// on: the kernel takes it with the device named
				// (RTA_OIF; ip6_validate_gw refuses it without one, or
				// through lo). The route needs dev up, not an address.
			default:
				return nil, fieldErrorf(path+".via", "%s is in the subnet of no address of %s", gw, devOr(rt.Dev, "any interface"))
			}
		} else if rt.Dev == "" {
			return nil, fieldErrorf(path, "neither via nor dev given")
		}
		if v := vethOf(r.Dev); v != "" {
			needs[v] = true
		} else {
			needs[ns.ID()] = true // a device of the namespace itself, such as lo
		}
		r.Needs = sortedKeys(needs)
		routes = append(routes, r)
	}
	for i, it := range n.Interfaces {
		if !it.DefaultRoute {
			continue
		}
		first := hostFirst[it.Name]
		if !first[0].IsValid() && !first[1].IsValid() {
			return nil, fieldErrorf(fmt.Sprintf("spec.network.interfaces[%d].defaultRoute", i), "the host end has no address to route through")
		}
		for fam, p := range first {
			if !p.IsValid() {
				continue
			}
			gw := p.Addr()
			a, ok := reach(gw, it.Name)
			if !ok {
				return nil, fieldErrorf(fmt.Sprintf("spec.network.interfaces[%d].defaultRoute", i), "host address %s is in the subnet of no address of %s", p, it.Name)
			}
			dst := "0.0.0.0/0"
			if fam == 1 {
				dst = "::/0"
			}
			routes = append(routes, &Route{Container: name, Netns: n.Namespace, Dst: dst, Via: gw.String(),
				Dev: it.Name, Needs: sortedKeys(map[string]bool{veths[i].ID(): true, a.id: true})})
		}
	}
	// Published ports go to the container's first IPv4 address and its
	// first IPv6 one that is not link-local.
	var target [2]portTarget
	for i, it := range n.Interfaces {
		for _, a := range inside {
			fam := portFamily(a.prefix.Addr())
			if a.iface == it.Name && fam >= 0 && !target[fam].addr.IsValid() {
				target[fam] = portTarget{addr: a.prefix, egress: veths[i].(*Veth).Host.Name, egressID: veths[i].ID()}
				if b := veths[i].(*Veth).Bridge; b != "" {
					target[fam].egress, target[fam].egressID = b, BridgeID(b)
				}
			}
		}
	}
	for _, r := range routes {
		target[0].routed = target[0].routed || r.(*Route).Dst == "0.0.0.0/0"
		target[1].routed = target[1].routed || r.(*Route).Dst == "::/0"
	}
	ports, err := buildPorts(sc, target)
	if err != nil {
		return nil, err
	}
	sortByID(veths)
	sortByID(addrs)
	sortByID(routes)
	out = append(out, veths...)
	out = append(out, addrs...)
	out = append(out, routes...)
	out = append(out, ports...)
	return out, nil
}

// linkLocalVia reports whether gw is an IPv6 link-local gateway that the
// kernel reaches through dev: dev must be named, and not lo.
func linkLocalVia(gw netip.Addr, dev string) bool {
	return gw.Is6() && gw.IsLinkLocalUnicast() && dev != "" && dev != "lo"
}

func devOr(dev, none string) string {
	if dev == "" {
		return none
	}
	return dev
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
