package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// BridgeName is the network's bridge on the host: spec.bridge, else
// "hutch-" and the name, or, when that is over 15 bytes, "hutch-", the
// name's first 4 bytes and 5 hex digits of its sha256.
func (n *NetworkDoc) BridgeName() string {
	if n.Spec.Bridge != "" {
		return n.Spec.Bridge
	}
	name := n.Metadata.Name
	if len("hutch-"+name) < IFNAMSIZ {
		return "hutch-" + name
	}
	sum := sha256.Sum256([]byte(name))
	return "hutch-" + name[:4] + hex.EncodeToString(sum[:])[:5]
}

// AttachName is the host end of the veth that plugs a container's
// interface into a network's bridge: "hutch" and 10 hex digits of the
// sha256 of "container/interface", unique per container and interface.
func AttachName(container, iface string) string {
	sum := sha256.Sum256([]byte(container + "/" + iface))
	return "hutch" + hex.EncodeToString(sum[:])[:10]
}

// GatewayAddr is the host's address on the bridge for a subnet: the subnet's
// gateway, else its first address.
func (s Subnet) GatewayAddr() (netip.Addr, error) {
	p, err := netip.ParsePrefix(s.CIDR)
	if err != nil {
		return netip.Addr{}, err
	}
	if s.Gateway != "" {
		return netip.ParseAddr(s.Gateway)
	}
	return p.Masked().Addr().Next(), nil
}

// network returns the manifest's network of that name, or nil.
func (m *Manifest) network(name string) *NetworkDoc {
	for _, n := range m.Networks {
		if n.Metadata.Name == name {
			return n
		}
	}
	return nil
}

// container returns the manifest's container of that name, or nil.
func (m *Manifest) container(name string) *Container {
	for _, c := range m.Containers {
		if c.Metadata.Name == name {
			return c
		}
	}
	return nil
}

// labChecks are the cross-field checks of networks, links, attachments and
// sysctls.
func labChecks(m *Manifest) Errors {
	var errs Errors
	errs = append(errs, checkDocNames(m)...)
	errs = append(errs, checkNetworks(m)...)
	errs = append(errs, checkAttachments(m)...)
	errs = append(errs, checkLinks(m)...)
	errs = append(errs, checkNetworkRoom(m)...)
	errs = append(errs, checkLinkAddresses(m)...)
	errs = append(errs, checkBridgeNames(m)...)
	for _, c := range m.Containers {
		if len(c.Spec.Sysctls) > 0 && c.Spec.Network == nil {
			errs = append(errs, c.errorAt("spec.sysctls", "sysctls are set in the container's own network namespace (expected spec.network)"))
		}
	}
	return errs
}

// checkDocNames: a network's or link's name is unique among the documents
// of every kind, since each names a state folder beside the containers'.
func checkDocNames(m *Manifest) Errors {
	var errs Errors
	seen := map[string]string{}
	for _, c := range m.Containers {
		seen[c.Metadata.Name] = "container"
	}
	check := func(d document, name, kind string) {
		if !isDNSLabel(name) {
			return
		}
		if other, dup := seen[name]; dup {
			errs = append(errs, d.errorAt("metadata.name", fmt.Sprintf("%q is also the name of a %s (expected a name no other document has)", name, other)))
			return
		}
		seen[name] = kind
	}
	for _, n := range m.Networks {
		check(n, n.Metadata.Name, "network")
	}
	for _, l := range m.Links {
		check(l, l.Metadata.Name, "link")
	}
	return errs
}

// subnetOf parses a network's subnet, or reports nothing when the cidr rule
// already refused it.
func subnetOf(s Subnet) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s.CIDR)
	return p, err == nil
}

// checkNetworks: each subnet is a prefix with host bits zero, with room for
// a gateway and containers, one per family; the gateway is a host address
// of it; subnets of different networks, and of host ends, never overlap
// (the host would have two connected routes); bridge names start with
// "hutch" and are unique.
func checkNetworks(m *Manifest) Errors {
	var errs Errors
	type subnetAt struct {
		p  netip.Prefix
		at string
	}
	var all []subnetAt
	bridges := map[string]string{}
	for _, n := range m.Networks {
		name := n.Metadata.Name
		if n.Spec.Bridge != "" && !strings.HasPrefix(n.Spec.Bridge, "hutch") {
			errs = append(errs, n.errorAt("spec.bridge", fmt.Sprintf("%q does not start with \"hutch\" (expected a name such as hutch-%s, so that isolation rules can tell hutch's bridges)", n.Spec.Bridge, name)))
		}
		br := n.BridgeName()
		if first, dup := bridges[br]; dup {
			errs = append(errs, n.errorAt("spec.bridge", fmt.Sprintf("bridge %q is also network %s's (expected a bridge per network)", br, first)))
		}
		bridges[br] = name
		fams := map[bool]string{}
		for i, s := range n.Spec.Subnets {
			path := fmt.Sprintf("spec.subnets[%d]", i)
			p, ok := subnetOf(s)
			if !ok {
				continue
			}
			if p.Masked() != p {
				errs = append(errs, n.errorAt(path+".cidr", fmt.Sprintf("%s has host bits set (expected the prefix %s)", p, p.Masked())))
				continue
			}
			max := 30
			if p.Addr().Is6() {
				max = 126
			}
			if p.Bits() > max {
				errs = append(errs, n.errorAt(path+".cidr", fmt.Sprintf("%s has no room for a gateway and containers (expected at most /%d)", p, max)))
				continue
			}
			if first, dup := fams[p.Addr().Is4()]; dup {
				errs = append(errs, n.errorAt(path+".cidr", fmt.Sprintf("a second %s subnet; the first is %s (expected one subnet per family)", family(p.Addr()), first)))
				continue
			}
			fams[p.Addr().Is4()] = path
			if s.Gateway != "" {
				gw, err := netip.ParseAddr(s.Gateway)
				if err == nil && !usableIn(p, gw) {
					errs = append(errs, n.errorAt(path+".gateway", fmt.Sprintf("%s is not a host address of %s (expected an address inside it, not its network or broadcast address)", gw, p)))
				}
			}
			for _, o := range all {
				if o.p.Overlaps(p) {
					errs = append(errs, n.errorAt(path+".cidr", fmt.Sprintf("%s overlaps %s of %s (expected separate subnets)", p, o.p, o.at)))
				}
			}
			all = append(all, subnetAt{p, "network " + name})
		}
	}
	// Host ends' subnets are connected routes on the host too.
	for _, a := range addresses(m) {
		if !a.host {
			continue
		}
		for _, o := range all {
			if o.p.Overlaps(a.prefix.Masked()) {
				errs = append(errs, a.at.c.errorAt(a.at.path, fmt.Sprintf("subnet %s overlaps %s of %s (expected separate subnets)", a.prefix.Masked(), o.p, o.at)))
			}
		}
	}
	return errs
}

// usableIn reports whether a is an address of p that a host can have: not
// the network address, nor IPv4's broadcast address.
func usableIn(p netip.Prefix, a netip.Addr) bool {
	if !p.Contains(a) || a == p.Masked().Addr() {
		return false
	}
	if a.Is4() {
		b := a.As4()
		n := p.Masked().Addr().As4()
		for i := range 4 {
			host := byte(0xff)
			if bits := p.Bits() - 8*i; bits >= 8 {
				host = 0
			} else if bits > 0 {
				host = 0xff >> bits
			}
			if b[i] != n[i]|host {
				return true
			}
		}
		return false
	}
	return true
}

// checkAttachments: an interface has a host end or a network, not both; the
// network is declared in the manifest; addresses on it lie in its subnets
// and are not its gateways; a container plugs into a network once.
func checkAttachments(m *Manifest) Errors {
	var errs Errors
	for _, c := range m.Containers {
		if c.Spec.Network == nil {
			continue
		}
		on := map[string]string{}
		for i, itf := range c.Spec.Network.Interfaces {
			base := fmt.Sprintf("spec.network.interfaces[%d]", i)
			if itf.Network == "" {
				if itf.Host.Name == "" {
					errs = append(errs, c.errorAt(base, "no host.name and no network (expected one of them: the host end's name, or the network to plug into)"))
				}
				continue
			}
			if itf.Host.Name != "" || len(itf.Host.Addresses) > 0 || itf.Host.MAC != "" {
				errs = append(errs, c.errorAt(base+".host", "host and network together (expected one of them: hutch names and plugs the host end of a network's link)"))
			}
			if !isDNSLabel(itf.Network) {
				continue
			}
			n := m.network(itf.Network)
			if n == nil {
				errs = append(errs, c.errorAt(base+".network", fmt.Sprintf("no network %q in the manifest (expected the name of a kind: Network document given to the same command)", itf.Network)))
				continue
			}
			if first, dup := on[itf.Network]; dup {
				errs = append(errs, c.errorAt(base+".network", fmt.Sprintf("the container is already on network %s through %s (expected one interface per network)", itf.Network, first)))
			}
			on[itf.Network] = base
			for j, a := range itf.Addresses {
				p, ok := validPrefix(a)
				if !ok {
					continue
				}
				path := fmt.Sprintf("%s.addresses[%d]", base, j)
				if msg := addressOnNetwork(n, p); msg != "" {
					errs = append(errs, c.errorAt(path, msg))
				}
			}
		}
	}
	return errs
}

// addressOnNetwork says what is wrong with a static address on network n,
// or "" when it is one n can give.
func addressOnNetwork(n *NetworkDoc, p netip.Prefix) string {
	for _, s := range n.Spec.Subnets {
		sp, ok := subnetOf(s)
		if !ok || sp.Addr().Is4() != p.Addr().Is4() {
			continue
		}
		if p.Masked() != sp {
			return fmt.Sprintf("%s is not in network %s's subnet %s (expected an address in %s with its prefix length /%d)", p, n.Metadata.Name, sp, sp, sp.Bits())
		}
		if !usableIn(sp, p.Addr()) {
			return fmt.Sprintf("%s is the network or broadcast address of %s (expected a host address)", p.Addr(), sp)
		}
		if gw, err := s.GatewayAddr(); err == nil && gw == p.Addr() {
			return fmt.Sprintf("%s is network %s's gateway, the host's address on the bridge (expected another address)", p.Addr(), n.Metadata.Name)
		}
		return ""
	}
	return fmt.Sprintf("network %s has no %s subnet (expected an address of one of its subnets)", n.Metadata.Name, family(p.Addr()))
}

// checkLinks: each end is in a container of the manifest that has its own
// network namespace, under a name no other interface of that container has;
// the two ends are in different containers.
func checkLinks(m *Manifest) Errors {
	var errs Errors
	used := map[string]string{} // container/interface -> where
	for _, c := range m.Containers {
		if c.Spec.Network == nil {
			continue
		}
		for i, itf := range c.Spec.Network.Interfaces {
			used[c.Metadata.Name+"/"+itf.Name] = fmt.Sprintf("spec.network.interfaces[%d] of %s", i, c.Metadata.Name)
		}
	}
	for _, l := range m.Links {
		eps := l.Spec.Endpoints
		if len(eps) == 2 && eps[0].Container == eps[1].Container && eps[0].Container != "" {
			errs = append(errs, l.errorAt("spec.endpoints[1].container", fmt.Sprintf("both ends are in container %s (expected two containers)", eps[0].Container)))
		}
		for i, e := range eps {
			base := fmt.Sprintf("spec.endpoints[%d]", i)
			if !isDNSLabel(e.Container) {
				continue
			}
			c := m.container(e.Container)
			switch {
			case c == nil:
				errs = append(errs, l.errorAt(base+".container", fmt.Sprintf("no container %q in the manifest (expected the name of a kind: Container document given to the same command)", e.Container)))
				continue
			case c.Spec.Network == nil:
				errs = append(errs, l.errorAt(base+".container", fmt.Sprintf("container %s has no network namespace (expected a container with spec.network)", e.Container)))
				continue
			}
			if what, _ := checkIfname(e.Interface); what != "" {
				continue
			}
			if e.Interface == "lo" {
				errs = append(errs, l.errorAt(base+".interface", `"lo" already exists in every network namespace (expected another name)`))
				continue
			}
			key := e.Container + "/" + e.Interface
			if first, dup := used[key]; dup {
				errs = append(errs, l.errorAt(base+".interface", fmt.Sprintf("interface %q of %s is also %s (expected a name the container does not use)", e.Interface, e.Container, first)))
				continue
			}
			used[key] = fmt.Sprintf("link %s's %s", l.Metadata.Name, base)
		}
	}
	return errs
}

// linkAddresses are the addresses of the link ends in container c, each
// with the index the end has after c's interfaces (for routes' dev).
func linkAddresses(m *Manifest, c *Container) []addrAt {
	var out []addrAt
	k := 0
	if c.Spec.Network != nil {
		k = len(c.Spec.Network.Interfaces)
	}
	for _, l := range m.Links {
		for i, e := range l.Spec.Endpoints {
			if e.Container != c.Metadata.Name {
				continue
			}
			for j, a := range e.Addresses {
				if p, ok := validPrefix(a); ok {
					out = append(out, addrAt{prefix: p, at: place{c, fmt.Sprintf("(link %s) spec.endpoints[%d].addresses[%d]", l.Metadata.Name, i, j)}, veth: k})
				}
			}
			k++
		}
	}
	return out
}

// linkEnds are the names of the link ends in container c, in the order
// linkAddresses numbers them.
func linkEnds(m *Manifest, c *Container) []string {
	var out []string
	for _, l := range m.Links {
		for _, e := range l.Spec.Endpoints {
			if e.Container == c.Metadata.Name {
				out = append(out, e.Interface)
			}
		}
	}
	return out
}

// checkNetworkRoom: each subnet of a network has an address for every
// interface on it that has no static address of its family, besides the
// gateway and the static addresses. hutch's IPAM serves interfaces in
// order of container and interface name; the first that would find no
// free address is the one refused, as plan would refuse it. (Addresses
// held by another manifest's containers are known only at plan time.)
func checkNetworkRoom(m *Manifest) Errors {
	var errs Errors
	for _, n := range m.Networks {
		type att struct {
			c    *Container
			i    int
			addr []netip.Prefix
		}
		var atts []att
		for _, c := range m.Containers {
			if c.Spec.Network == nil {
				continue
			}
			for i, itf := range c.Spec.Network.Interfaces {
				if itf.Network != n.Metadata.Name {
					continue
				}
				a := att{c: c, i: i}
				for _, s := range itf.Addresses {
					if p, ok := validPrefix(s); ok {
						a.addr = append(a.addr, p)
					}
				}
				atts = append(atts, a)
			}
		}
		sort.SliceStable(atts, func(x, y int) bool {
			kx := atts[x].c.Metadata.Name + "/" + atts[x].c.Spec.Network.Interfaces[atts[x].i].Name
			ky := atts[y].c.Metadata.Name + "/" + atts[y].c.Spec.Network.Interfaces[atts[y].i].Name
			return kx < ky
		})
		for _, s := range n.Spec.Subnets {
			sub, ok := subnetOf(s)
			gw, err := s.GatewayAddr()
			if !ok || err != nil || sub.Masked() != sub {
				continue
			}
			taken := map[netip.Addr]bool{gw: true}
			for _, a := range atts {
				for _, p := range a.addr {
					if sub.Contains(p.Addr()) {
						taken[p.Addr()] = true
					}
				}
			}
			free := hostAddresses(sub) - uint64(len(taken))
			for _, a := range atts {
				if hasFamily(a.addr, sub.Addr()) {
					continue
				}
				if free == 0 {
					errs = append(errs, a.c.errorAt(fmt.Sprintf("spec.network.interfaces[%d].network", a.i),
						fmt.Sprintf("network %s's subnet %s has no free address left for this interface: its gateway and the interfaces before it take them all (expected a larger subnet)", n.Metadata.Name, sub)))
					break
				}
				free--
			}
		}
	}
	return errs
}

// hostAddresses is how many addresses of sub IPAM can give, the gateway's
// included: all but the network address (and IPv4's broadcast address),
// at most 1<<32.
func hostAddresses(sub netip.Prefix) uint64 {
	bits := sub.Addr().BitLen() - sub.Bits()
	if bits > 32 {
		bits = 32
	}
	n := uint64(1)<<bits - 1
	if sub.Addr().Is4() && n > 0 {
		n--
	}
	return n
}

// checkLinkAddresses: an address of a link's end is used once in the whole
// manifest, as an interface's address is (checkAddresses): twice on one
// end is one address the kernel holds once, and on two ends the address
// answers on whichever the kernel finds first.
func checkLinkAddresses(m *Manifest) Errors {
	var errs Errors
	seen := map[netip.Addr]string{}
	for _, a := range addresses(m) {
		if _, dup := seen[a.prefix.Addr()]; !dup {
			seen[a.prefix.Addr()] = a.at.String()
		}
	}
	for _, l := range m.Links {
		for i, e := range l.Spec.Endpoints {
			for j, s := range e.Addresses {
				p, ok := validPrefix(s)
				if !ok {
					continue
				}
				path := fmt.Sprintf("spec.endpoints[%d].addresses[%d]", i, j)
				if first, dup := seen[p.Addr()]; dup {
					errs = append(errs, l.errorAt(path, fmt.Sprintf("address %s is also used at %s (expected each address once)", p.Addr(), first)))
					continue
				}
				pos := l.Source.Pos(path)
				seen[p.Addr()] = fmt.Sprintf("%s:%d (%s of link %s)", l.Source.File, pos.Line, path, l.Metadata.Name)
			}
		}
	}
	return errs
}

// checkBridgeNames: no host end of a container takes the name of a
// network's bridge; both live in the host's namespace, and the second
// RTM_NEWLINK would fail with EEXIST.
func checkBridgeNames(m *Manifest) Errors {
	var errs Errors
	bridges := map[string]string{}
	for _, n := range m.Networks {
		bridges[n.BridgeName()] = n.Metadata.Name
	}
	for _, c := range m.Containers {
		if c.Spec.Network == nil {
			continue
		}
		for i, itf := range c.Spec.Network.Interfaces {
			if n, clash := bridges[itf.Host.Name]; clash && itf.Host.Name != "" {
				errs = append(errs, c.errorAt(fmt.Sprintf("spec.network.interfaces[%d].host.name", i),
					fmt.Sprintf("%q is the bridge of network %s (expected a name no bridge has)", itf.Host.Name, n)))
			}
		}
	}
	return errs
}
