package plan

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"hutch/spec"
)

// Unit is a network or a link: a group of host resources with a name of
// its own, kept by the state store beside the containers (delete NAME
// removes it), that has no process and no config.json.
type Unit struct {
	Name      string
	Kind      string // spec.KindNetwork or spec.KindLink
	Source    Source
	Resources []Resource
}

// Lease is an address a container was given on a network by an earlier
// apply (read from the state store by the caller): IPAM gives it the same
// one again.
type Lease struct {
	Network   string
	Container string
	Interface string
	Addr      netip.Prefix
}

// lab is what Build knows of a manifest's networks and links while it
// builds the containers.
type lab struct {
	nets   map[string]*labNet
	links  []*spec.LinkDoc
	addrs  map[string][]netip.Prefix // "container/interface" -> addresses on its network (static and leased)
	hosts  map[string][]hostEntry    // container -> its peers
	nat    map[string]bool           // container -> on a network with NAT
	resolv string
}

// labNet is one network, resolved.
type labNet struct {
	doc      *spec.NetworkDoc
	bridge   string
	subnets  []netip.Prefix
	gateways []netip.Addr // per subnet
}

type hostEntry struct {
	addr netip.Addr
	name string
}

// FieldError is a value of a manifest that Build cannot use, at its place
// in the file, as spec.Validate reports its errors. Validation refuses
// first everything Build would refuse, but for what only the caller's
// Options show: addresses other manifests' containers hold on a network,
// and the content of seccomp profile files.
type FieldError struct {
	File      string
	Line, Col int
	Path      string // the field path, "spec.security.seccomp"
	Err       error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s: %v", e.File, e.Line, e.Col, e.Path, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// posErr is an error at a document's field, as validation gives them.
func posErr(src spec.Source, path, format string, args ...any) error {
	return placed(src, &FieldError{Path: path, Err: fmt.Errorf(format, args...)})
}

// atField and fieldErrorf are errors at a field of the container being
// built; Build places them in its document.
func atField(path string, err error) error { return &FieldError{Path: path, Err: err} }

func fieldErrorf(path, format string, args ...any) error {
	return &FieldError{Path: path, Err: fmt.Errorf(format, args...)}
}

// placed gives a FieldError its place in src's document, when it has none.
func placed(src spec.Source, fe *FieldError) *FieldError {
	if fe.Line == 0 {
		p := src.Pos(fe.Path)
		fe.File, fe.Line, fe.Col = src.File, p.Line, p.Col
	}
	return fe
}

// buildLab resolves the networks, gives addresses to the interfaces on
// them that have none (IPAM), and works out who shares a network or link
// with whom, for /etc/hosts.
func buildLab(m *spec.Manifest, o Options) (*lab, error) {
	l := &lab{nets: map[string]*labNet{}, links: m.Links, addrs: map[string][]netip.Prefix{},
		hosts: map[string][]hostEntry{}, nat: map[string]bool{}, resolv: o.ResolvConf}
	for _, n := range m.Networks {
		ln := &labNet{doc: n, bridge: n.BridgeName()}
		for i, s := range n.Spec.Subnets {
			p, err := netip.ParsePrefix(s.CIDR)
			if err != nil {
				return nil, posErr(n.Source, fmt.Sprintf("spec.subnets[%d].cidr", i), "%v", err)
			}
			gw, err := s.GatewayAddr()
			if err != nil {
				return nil, posErr(n.Source, fmt.Sprintf("spec.subnets[%d].gateway", i), "%v", err)
			}
			ln.subnets = append(ln.subnets, p)
			ln.gateways = append(ln.gateways, gw)
		}
		l.nets[n.Metadata.Name] = ln
	}
	if err := l.allocate(m, o.Leases); err != nil {
		return nil, err
	}
	l.peers(m, o.Leases)
	return l, nil
}

// attachment is one container interface on a network.
type attachment struct {
	c     *spec.Container
	index int
	itf   spec.Interface
}

func (a attachment) key() string { return a.c.Metadata.Name + "/" + a.itf.Name }

func attachments(m *spec.Manifest, network string) []attachment {
	var out []attachment
	for _, c := range m.Containers {
		if c.Spec.Network == nil {
			continue
		}
		for i, itf := range c.Spec.Network.Interfaces {
			if itf.Network == network {
				out = append(out, attachment{c, i, itf})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

// allocate is hutch's IPAM. On each subnet of each network, the addresses
// taken are the gateway, every static address of the manifest, and the
// leases of containers the manifest does not have (another manifest's,
// still on the network). Each interface without an address of a subnet's
// family gets its lease back when it still has one there and nobody else
// took it, else the lowest free address; interfaces are served in order
// of container and interface name, so a plan gives the same answer every
// time.
func (l *lab) allocate(m *spec.Manifest, leases []Lease) error {
	names := make([]string, 0, len(l.nets))
	for n := range l.nets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		net := l.nets[name]
		atts := attachments(m, name)
		inManifest := map[string]bool{}
		for _, a := range atts {
			inManifest[a.key()] = true
		}
		for si, sub := range net.subnets {
			taken := map[netip.Addr]string{net.gateways[si]: "the gateway"}
			for _, a := range atts {
				for _, s := range a.itf.Addresses {
					p, err := netip.ParsePrefix(s)
					if err != nil || !sub.Contains(p.Addr()) {
						continue
					}
					taken[p.Addr()] = a.key()
					l.addrs[a.key()] = append(l.addrs[a.key()], p)
				}
			}
			mine := map[string]netip.Prefix{}
			for _, ls := range leases {
				if ls.Network != name || !sub.Contains(ls.Addr.Addr()) {
					continue
				}
				key := ls.Container + "/" + ls.Interface
				if !inManifest[key] {
					if owner, dup := taken[ls.Addr.Addr()]; dup && owner != key {
						// A static address of this manifest that another
						// container holds.
						for _, a := range atts {
							for j, s := range a.itf.Addresses {
								if p, err := netip.ParsePrefix(s); err == nil && p.Addr() == ls.Addr.Addr() {
									return posErr(a.c.Source, fmt.Sprintf("spec.network.interfaces[%d].addresses[%d]", a.index, j),
										"%s on network %s is already container %s's (expected a free address, or none to get one)", p.Addr(), name, ls.Container)
								}
							}
						}
					}
					taken[ls.Addr.Addr()] = key
					continue
				}
				mine[key] = ls.Addr
			}
			for _, a := range atts {
				if hasFamily(l.addrs[a.key()], sub.Addr().Is4()) {
					continue
				}
				if p, ok := mine[a.key()]; ok && p.Masked() == sub {
					if _, dup := taken[p.Addr()]; !dup {
						taken[p.Addr()] = a.key()
						l.addrs[a.key()] = append(l.addrs[a.key()], p)
						continue
					}
				}
				addr, ok := lowestFree(sub, taken)
				if !ok {
					return posErr(a.c.Source, fmt.Sprintf("spec.network.interfaces[%d].network", a.index),
						"network %s's subnet %s has no free address left (expected a larger subnet)", name, sub)
				}
				taken[addr] = a.key()
				l.addrs[a.key()] = append(l.addrs[a.key()], netip.PrefixFrom(addr, sub.Bits()))
			}
		}
	}
	return nil
}

func hasFamily(ps []netip.Prefix, v4 bool) bool {
	for _, p := range ps {
		if p.Addr().Is4() == v4 {
			return true
		}
	}
	return false
}

// lowestFree is the lowest host address of sub that nobody has.
func lowestFree(sub netip.Prefix, taken map[netip.Addr]string) (netip.Addr, bool) {
	sub = sub.Masked()
	for a := sub.Addr().Next(); a.IsValid() && sub.Contains(a); a = a.Next() {
		if _, dup := taken[a]; dup {
			continue
		}
		if a.Is4() && !sub.Contains(a.Next()) {
			return netip.Addr{}, false // IPv4's broadcast address
		}
		return a, true
	}
	return netip.Addr{}, false
}

// peers works out, for each container, the names and addresses of the
// containers of its lab, and whether it is on a NAT network. A lab is a
// set of containers joined through networks and links, directly or not: a
// client behind a router finds the server on the router's other link by
// name, and reaches it by its routes.
func (l *lab) peers(m *spec.Manifest, leases []Lease) {
	// Union-find over container names.
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if p, ok := parent[x]; ok && p != x {
			r := find(p)
			parent[x] = r
			return r
		}
		parent[x] = x
		return x
	}
	join := func(a, b string) { parent[find(a)] = find(b) }
	entries := map[string][]hostEntry{} // container -> its own addresses
	for name, net := range l.nets {
		group := "network:" + name
		find(group)
		for _, a := range attachments(m, name) {
			c := a.c.Metadata.Name
			join(c, group)
			for _, p := range l.addrs[a.key()] {
				entries[c] = append(entries[c], hostEntry{p.Addr(), c})
			}
			if net.doc.Spec.NAT {
				l.nat[c] = true
			}
		}
		// Containers of other manifests on the network, by their leases.
		for _, ls := range leases {
			if ls.Network == name && containerNamed(m, ls.Container) == nil {
				join(ls.Container, group)
				entries[ls.Container] = append(entries[ls.Container], hostEntry{ls.Addr.Addr(), ls.Container})
			}
		}
	}
	for _, lk := range l.links {
		eps := lk.Spec.Endpoints
		if len(eps) == 2 {
			join(eps[0].Container, eps[1].Container)
		}
		for _, e := range eps {
			for _, s := range e.Addresses {
				if p, err := netip.ParsePrefix(s); err == nil {
					entries[e.Container] = append(entries[e.Container], hostEntry{p.Addr(), e.Container})
				}
			}
		}
	}
	for c := range entries {
		for o, es := range entries {
			if find(c) == find(o) {
				l.hosts[c] = append(l.hosts[c], es...)
			}
		}
	}
}

// hostsFile is a container's /etc/hosts: loopback, then every address of
// itself and its peers with their names, sorted by address.
func (l *lab) hostsFile(name, hostname string) string {
	entries := append([]hostEntry(nil), l.hosts[name]...)
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].addr != entries[j].addr {
			return entries[i].addr.Less(entries[j].addr)
		}
		return entries[i].name < entries[j].name
	})
	var b strings.Builder
	b.WriteString("# written by hutch: the containers of this lab, joined by networks and links\n")
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for i, e := range entries {
		if i > 0 && entries[i-1] == e {
			continue
		}
		names := e.name
		if e.name == name && hostname != "" && hostname != name {
			names = hostname + " " + name
		}
		fmt.Fprintf(&b, "%s\t%s\n", e.addr, names)
	}
	return b.String()
}

// buildUnits makes the resources of each network and link.
func (l *lab) buildUnits(m *spec.Manifest) ([]*Unit, error) {
	var out []*Unit
	for _, n := range m.Networks {
		net := l.nets[n.Metadata.Name]
		u := &Unit{Name: n.Metadata.Name, Kind: spec.KindNetwork, Source: Source{File: n.Source.File, Doc: n.Source.Doc}}
		br := &Bridge{Network: u.Name, Name: net.bridge, MTU: n.Spec.MTU}
		u.Resources = append(u.Resources, br)
		for i, sub := range net.subnets {
			gw := netip.PrefixFrom(net.gateways[i], sub.Bits())
			u.Resources = append(u.Resources, &Address{Container: u.Name, Netns: HostNetns, Link: net.bridge, CIDR: gw.String(), Veth: br.ID()})
		}
		// Traffic from another hutch network to this one is dropped: the
		// containers of a network talk over its bridge, never routed from
		// another's.
		u.Resources = append(u.Resources, &NftRule{Network: u.Name, Name: u.Name + "/isolate", Chain: NftForward,
			IIfPrefix: "hutch", NotIIf: net.bridge, OIf: net.bridge, Verdict: NftDrop})
		if n.Spec.NAT {
			for _, sub := range net.subnets {
				fam := "ipv4"
				key := "net.ipv4.ip_forward"
				if sub.Addr().Is6() {
					fam, key = "ipv6", "net.ipv6.conf.all.forwarding"
				}
				u.Resources = append(u.Resources,
					&NftRule{Network: u.Name, Name: u.Name + "/masquerade-" + fam, Chain: NftPostrouting, Src: sub.String(), NotOIf: net.bridge, Verdict: NftMasquerade},
					&Sysctl{Holder: u.Name, Netns: HostNetns, Key: key, Value: "1"})
			}
		}
		sortByID(u.Resources)
		out = append(out, u)
	}
	for _, lk := range m.Links {
		eps := lk.Spec.Endpoints
		if len(eps) != 2 {
			return nil, posErr(lk.Source, "spec.endpoints", "a link has two ends")
		}
		end := func(e spec.Endpoint) (LinkEndpoint, error) {
			c := containerNamed(m, e.Container)
			if c == nil || c.Spec.Network == nil {
				return LinkEndpoint{}, posErr(lk.Source, "spec.endpoints", "no container %s with a network namespace", e.Container)
			}
			ns := c.Spec.Network.Namespace
			if ns == "" {
				ns = c.Metadata.Name
			}
			return LinkEndpoint{Netns: ns, Name: e.Interface, MAC: strings.ToLower(e.MAC), MTU: lk.Spec.MTU}, nil
		}
		a, err := end(eps[0])
		if err != nil {
			return nil, err
		}
		b, err := end(eps[1])
		if err != nil {
			return nil, err
		}
		out = append(out, &Unit{Name: lk.Metadata.Name, Kind: spec.KindLink, Source: Source{File: lk.Source.File, Doc: lk.Source.Doc},
			Resources: []Resource{&Link{Name: lk.Metadata.Name, A: a, B: b}}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func containerNamed(m *spec.Manifest, name string) *spec.Container {
	for _, c := range m.Containers {
		if c.Metadata.Name == name {
			return c
		}
	}
	return nil
}

// linkEnds are container c's ends of the manifest's links, with the ID of
// the link each belongs to.
func (l *lab) linkEnds(name string) []linkEnd {
	var out []linkEnd
	for _, lk := range l.links {
		for _, e := range lk.Spec.Endpoints {
			if e.Container == name {
				out = append(out, linkEnd{id: LinkID(lk.Metadata.Name), e: e})
			}
		}
	}
	return out
}

type linkEnd struct {
	id string
	e  spec.Endpoint
}

// onLab says whether container c is on a network or at a link's end.
func (l *lab) onLab(c *spec.Container) bool {
	if c.Spec.Network == nil {
		return false
	}
	for _, itf := range c.Spec.Network.Interfaces {
		if itf.Network != "" {
			return true
		}
	}
	return len(l.linkEnds(c.Metadata.Name)) > 0
}

// containerFiles are the resources of a container that its networks and
// spec.sysctls add: /etc/hosts (and /etc/resolv.conf on a NAT network) as
// bundle files bind-mounted read-only into it, and its sysctls. The mounts
// go into oci; the files are written before the process starts, and are
// rewritten in place later without a restart.
func (l *lab) containerFiles(c *spec.Container, o Options, oci *specs.Spec, rootfs *Rootfs) []Resource {
	name := c.Metadata.Name
	var out []Resource
	if l.onLab(c) {
		files := []*File{{Container: name, Name: "hosts", Content: l.hostsFile(name, c.Spec.Hostname)}}
		if l.nat[name] {
			files = append(files, &File{Container: name, Name: "resolv.conf", Content: resolvConf(l.resolv)})
		}
		for _, f := range files {
			f.Needs = []string{rootfs.ID()}
			oci.Mounts = append(oci.Mounts, specs.Mount{Destination: BundleFiles[f.Name], Type: "bind",
				Source: filepath.Join(o.BundleDir(name), f.Name), Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
			out = append(out, f)
		}
	}
	if c.Spec.Network != nil && len(c.Spec.Sysctls) > 0 {
		ns := c.Spec.Network.Namespace
		if ns == "" {
			ns = name
		}
		keys := make([]string, 0, len(c.Spec.Sysctls))
		for k := range c.Spec.Sysctls {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, &Sysctl{Holder: name, Netns: ns, Key: k, Value: c.Spec.Sysctls[k], Needs: []string{NetnsID(ns)}})
		}
	}
	return out
}

// resolvConf is a container's /etc/resolv.conf on a NAT network: the host's
// nameserver, search and options lines, without loopback nameservers (a
// resolver on the host's 127.0.0.53 is not reachable from the container's
// namespace).
func resolvConf(host string) string {
	var b strings.Builder
	b.WriteString("# written by hutch from the host's resolver settings\n")
	for _, line := range strings.Split(host, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "nameserver" && f[0] != "search" && f[0] != "options") {
			continue
		}
		if f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err != nil || a.IsLoopback() {
				continue
			}
		}
		b.WriteString(strings.Join(f, " ") + "\n")
	}
	return b.String()
}
