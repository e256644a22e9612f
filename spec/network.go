package spec

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// The lab documents: networks that containers attach to (a Linux bridge on
// the host) and links straight between two containers.

// KindNetwork is the kind of a network document.
const KindNetwork = "Network"

// KindLink is the kind of a link document.
const KindLink = "Link"

// NetworkDoc is one `kind: Network` document: a Linux bridge on the host
// with its subnets, that containers attach to with
// spec.network.interfaces[].network.
type NetworkDoc struct {
	// APIVersion is hutch/v1alpha1.
	APIVersion string `yaml:"apiVersion" validate:"required,eq=hutch/v1alpha1"`
	// Kind is Network.
	Kind string `yaml:"kind" validate:"required,eq=Network"`
	// Metadata names the network: a DNS label, unique among all documents
	// of every kind (it names the network's state folder).
	Metadata LabMetadata `yaml:"metadata"`
	// Spec is what the network is made of.
	Spec NetworkSpec `yaml:"spec"`

	Source Source `yaml:"-" validate:"-"`
}

// LabMetadata names a network or a link. It has no labels: hutch keeps
// labels in a container's config.json (its OCI annotations), and a network
// or a link has none, so labels there would be accepted and then lost.
type LabMetadata struct {
	// Name is a DNS label (at most 63 lowercase letters, digits and '-'),
	// unique among all documents of every kind.
	Name string `yaml:"name" validate:"required,dnslabel"`
}

// NetworkSpec is a network's bridge, subnets and NAT.
type NetworkSpec struct {
	// Bridge is the bridge's name on the host (default hutch-NAME, or
	// hutch-, 4 letters of the name and a hash when that is over 15
	// bytes); it must start with "hutch", so that networks can be told
	// apart from other bridges (isolation rules match hutch*).
	Bridge string `yaml:"bridge,omitempty" validate:"omitempty,ifname"`
	// Subnets are the network's IPv4 and IPv6 prefixes (host bits zero),
	// at most one of each family.
	Subnets []Subnet `yaml:"subnets" validate:"required,min=1,max=2,dive"`
	// NAT masquerades traffic from the subnets that leaves the host by
	// another interface (nftables), turns on the host's forwarding while
	// the network exists, and gives containers the host's resolvers.
	NAT bool `yaml:"nat,omitempty"`
	// MTU of the bridge and of the containers' links to it (default the
	// kernel's, 1500).
	MTU int `yaml:"mtu,omitempty" validate:"omitempty,min=68,max=65535"`
}

// Subnet is one prefix of a network.
type Subnet struct {
	// CIDR is the prefix with its length, host bits zero: 10.89.0.0/24,
	// fd89::/64. At most /30 (IPv4) or /126 (IPv6): room for the
	// gateway and containers.
	CIDR string `yaml:"cidr" validate:"required,cidr"`
	// Gateway is the host's address on the bridge, in the subnet
	// (default: its first address). Containers' default routes go there.
	Gateway string `yaml:"gateway,omitempty" validate:"omitempty,ip"`
}

// LinkDoc is one `kind: Link` document: a veth pair straight between two
// containers' network namespaces, with addresses on each end.
type LinkDoc struct {
	// APIVersion is hutch/v1alpha1.
	APIVersion string `yaml:"apiVersion" validate:"required,eq=hutch/v1alpha1"`
	// Kind is Link.
	Kind string `yaml:"kind" validate:"required,eq=Link"`
	// Metadata names the link: a DNS label, unique among all documents.
	Metadata LabMetadata `yaml:"metadata"`
	// Spec says what the link connects.
	Spec LinkSpec `yaml:"spec"`

	Source Source `yaml:"-" validate:"-"`
}

// LinkSpec is a link's two ends.
type LinkSpec struct {
	// Endpoints are the two ends, each in a container of the manifest.
	Endpoints []Endpoint `yaml:"endpoints" validate:"required,len=2,dive"`
	// MTU of both ends (default the kernel's, 1500).
	MTU int `yaml:"mtu,omitempty" validate:"omitempty,min=68,max=65535"`
}

// Endpoint is one end of a link.
type Endpoint struct {
	// Container is the name of a container with a network namespace.
	Container string `yaml:"container" validate:"required,dnslabel"`
	// Interface is the end's name inside that container.
	Interface string `yaml:"interface" validate:"required,ifname"`
	// Addresses are the end's addresses with their prefix length, such as
	// 10.0.1.1/30.
	Addresses []string `yaml:"addresses,omitempty" validate:"dive,cidr_addr"`
	// MAC is the end's hardware address (default random).
	MAC string `yaml:"mac,omitempty" validate:"omitempty,mac"`
}

// namespacedSysctls are the kernel parameters a container may set: those
// the kernel keeps per network namespace (so setting one never changes the
// host), with IFACE standing for all, default, lo or an interface name.
// Compiled on first use, not at package init: every verb of the binary,
// `hutch version` too, pays for what package init does.
var namespacedSysctls = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^net\.(` +
		`ipv4\.(ip_forward|ip_local_port_range|ip_unprivileged_port_start|ping_group_range|` +
		`tcp_syncookies|tcp_keepalive_time|tcp_keepalive_intvl|tcp_keepalive_probes|tcp_fin_timeout|tcp_tw_reuse|` +
		`tcp_ecn|tcp_rmem|tcp_wmem|tcp_mtu_probing|icmp_echo_ignore_all|icmp_echo_ignore_broadcasts|` +
		`icmp_ratelimit|fib_multipath_hash_policy|fib_multipath_use_neigh|ip_default_ttl|ip_nonlocal_bind|` +
		`conf\.[^./\s]{1,15}\.(forwarding|rp_filter|accept_redirects|send_redirects|secure_redirects|proxy_arp|` +
		`arp_ignore|arp_announce|arp_filter|accept_local|accept_source_route|log_martians|route_localnet|mc_forwarding))|` +
		`ipv6\.(fib_multipath_hash_policy|` +
		`conf\.[^./\s]{1,15}\.(forwarding|disable_ipv6|accept_ra|accept_dad|autoconf|accept_redirects|` +
		`hop_limit|mtu|proxy_ndp|use_tempaddr|addr_gen_mode|seg6_enabled))|` +
		`core\.somaxconn` +
		`)$`)
})

const expectSysctl = "a kernel parameter of the network namespace, such as net.ipv4.ip_forward or net.ipv6.conf.all.forwarding (docs/manifest.md lists them)"

func checkSysctl(s string) (string, string) {
	if namespacedSysctls().MatchString(s) {
		return "", ""
	}
	if !strings.HasPrefix(s, "net.") {
		return fmt.Sprintf("%q is not a network namespace's parameter (a container may not change the host's kernel)", s), expectSysctl
	}
	return fmt.Sprintf("%q is not in hutch's list of per-namespace parameters", s), expectSysctl
}

func (n *NetworkDoc) errorAt(path, msg string) *Error { return n.Source.errorAt(path, msg) }
func (n *NetworkDoc) written(path string) bool        { return n.Source.written(path) }
func (l *LinkDoc) errorAt(path, msg string) *Error    { return l.Source.errorAt(path, msg) }
func (l *LinkDoc) written(path string) bool           { return l.Source.written(path) }
