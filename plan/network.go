package plan

// The resources of a hutch network (kind: Network): a Linux bridge on the
// host that containers attach their veth host ends to.

// KindBridge is the kind of a Linux bridge.
const KindBridge Kind = "bridge"

// Bridge is a Linux bridge in the host's network namespace, made for the
// hutch network Network. MTU is zero when the kernel may choose.
type Bridge struct {
	Network string `json:"network"`
	Name    string `json:"name"`
	MTU     int    `json:"mtu,omitempty"`
	// Down is set only in an observed value, for a bridge that is not up;
	// hutch always wants it up.
	Down bool `json:"down,omitempty"`
}

func (b *Bridge) ID() string     { return BridgeID(b.Name) }
func (b *Bridge) Kind() Kind     { return KindBridge }
func (b *Bridge) Owner() string  { return b.Network }
func (b *Bridge) Deps() []string { return nil }

// BridgeID is the resource ID of the bridge called name.
func BridgeID(name string) string { return "bridge/" + name }

// KindNftRule is the kind of one nftables rule in hutch's table.
const KindNftRule Kind = "nftrule"

// NftTable is the nftables table that holds every rule hutch makes, in the
// inet family (IPv4 and IPv6): `nft list table inet hutch`. Its base chains
// are made with the first rule that needs them, and the table goes with the
// last rule.
const NftTable = "hutch"

// The base chains of hutch's table: NftPostrouting is a nat chain at the
// postrouting hook (source NAT priority, 100); NftForward a filter chain at
// the forward hook (priority 0, policy accept).
// NftPrerouting and NftOutput are nat chains at the prerouting and output
// hooks (destination NAT priority, -100): published ports, for packets
// that come in and for the host's own.
const (
	NftPostrouting = "postrouting"
	NftForward     = "forward"
	NftPrerouting  = "prerouting"
	NftOutput      = "output"
)

// The verdicts an NftRule can end in.
const (
	NftMasquerade = "masquerade"
	NftAccept     = "accept"
	NftDrop       = "drop"
	NftDNAT       = "dnat"
)

// NftRule is one rule in a base chain of hutch's table. Every match that is
// set must hold for the verdict to apply. The rule carries its ID as the
// rule's user data (NFTA_RULE_USERDATA), which is how hutch finds it again.
type NftRule struct {
	Network string `json:"network"`
	// Name is unique among hutch's rules ("labnet/masquerade").
	Name  string `json:"name"`
	Chain string `json:"chain"`
	// Src is a prefix the source address must be in (its family decides
	// whether the rule matches IPv4 or IPv6).
	Src string `json:"src,omitempty"`
	// IIf and OIf name the input and output interface; NotIIf and NotOIf
	// an interface the packet must not come in or go out by. IIfPrefix
	// matches input interfaces whose name starts with it (nft's "hutch-*").
	IIf       string `json:"iif,omitempty"`
	IIfPrefix string `json:"iifPrefix,omitempty"`
	NotIIf    string `json:"notIif,omitempty"`
	OIf       string `json:"oif,omitempty"`
	NotOIf    string `json:"notOif,omitempty"`
	// Dst is an address the destination must be; LocalDst asks that it
	// be one of the host's own (nft's `fib daddr type local`).
	Dst      string `json:"dst,omitempty"`
	LocalDst bool   `json:"localDst,omitempty"`
	// NotDst is an address the destination must not be (`ip6 daddr !=
	// ::1`).
	NotDst string `json:"notDst,omitempty"`
	// LocalSrc asks that the source be one of the host's own addresses
	// (`fib saddr type local`: 127.0.0.1 and every address of the host).
	LocalSrc bool `json:"localSrc,omitempty"`
	// Proto ("tcp" or "udp") and DPort match the layer-4 protocol and
	// destination port.
	Proto string `json:"proto,omitempty"`
	DPort int    `json:"dport,omitempty"`
	// DNATed matches packets of connections whose destination was
	// rewritten (`ct status dnat`).
	DNATed bool `json:"dnated,omitempty"`
	// To is the new destination of a dnat verdict, "ADDR:PORT"
	// ("[ADDR]:PORT" for IPv6).
	To      string `json:"to,omitempty"`
	Verdict string `json:"verdict"`
	// Differs is set only in an observed value, for a rule whose
	// expressions are not the wanted ones (changed by hand) or that the
	// kernel holds more than once.
	Differs bool `json:"differs,omitempty"`
}

func (r *NftRule) ID() string     { return NftRuleID(r.Name) }
func (r *NftRule) Kind() Kind     { return KindNftRule }
func (r *NftRule) Owner() string  { return r.Network }
func (r *NftRule) Deps() []string { return nil }

// NftRuleID is the resource ID of hutch's nftables rule called name.
func NftRuleID(name string) string { return "nftrule/" + name }

// KindSysctl is the kind of one kernel parameter of a network namespace.
const KindSysctl Kind = "sysctl"

// Sysctl is a network namespace's kernel parameter (/proc/sys/net/...),
// Key in sysctl's dotted form ("net.ipv4.ip_forward"): a container's own
// (Netns its namespace) or the host's (HostNetns, set for the hutch
// networks that need forwarding). hutch keeps the value it found before
// the first change and writes it back when the last owner that wanted the
// parameter is deleted.
type Sysctl struct {
	// Holder is the container or network that wants the value.
	Holder string `json:"holder"`
	Netns  string `json:"netns"`
	Key    string `json:"key"`
	Value  string `json:"value"`
	// Needs are the resources that must exist first (the netns).
	Needs []string `json:"needs,omitempty"`
}

func (s *Sysctl) ID() string {
	if s.Netns == HostNetns {
		// One resource per owner: each network that needs forwarding holds
		// the host's parameter, and the last one restores it.
		return "sysctl/host/" + s.Key + "/" + s.Holder
	}
	return "sysctl/" + s.Netns + "/" + s.Key
}
func (s *Sysctl) Kind() Kind     { return KindSysctl }
func (s *Sysctl) Owner() string  { return s.Holder }
func (s *Sysctl) Deps() []string { return s.Needs }

// CarriedBy: a namespace's parameter goes with the namespace.
func (s *Sysctl) CarriedBy() []string {
	if s.Netns == HostNetns {
		return nil
	}
	return []string{NetnsID(s.Netns)}
}

// KindFile is the kind of a file hutch keeps in a container's bundle and
// bind-mounts into it.
const KindFile Kind = "file"

// File is a file of a container's bundle that hutch writes and the
// container sees through a bind mount in its config.json (Name "hosts" at
// /etc/hosts, "resolv.conf" at /etc/resolv.conf). It is rewritten in place
// when its content changes, so the running container sees the new content
// without a restart (the bind mount holds the inode, which a rename would
// replace).
type File struct {
	Container string `json:"container"`
	Name      string `json:"name"`
	Content   string `json:"content"`
	// Needs are the resources that must exist first (the rootfs, whose
	// step makes the bundle folder).
	Needs []string `json:"needs,omitempty"`
}

func (f *File) ID() string     { return "file/" + f.Container + "/" + f.Name }
func (f *File) Kind() Kind     { return KindFile }
func (f *File) Owner() string  { return f.Container }
func (f *File) Deps() []string { return f.Needs }

// BundleFiles are the names a File may have, with the path each is
// mounted at inside the container.
var BundleFiles = map[string]string{"hosts": "/etc/hosts", "resolv.conf": "/etc/resolv.conf"}

// KindLink is the kind of a veth pair between two containers.
const KindLink Kind = "link"

// LinkEndpoint is one end of a Link: the interface Name in the network
// namespace Netns. MAC and MTU are zero when the kernel may choose.
type LinkEndpoint struct {
	Netns string `json:"netns"`
	Name  string `json:"name"`
	MAC   string `json:"mac,omitempty"`
	MTU   int    `json:"mtu,omitempty"`
	// Down is set only in an observed value, for an end that is not up.
	Down bool `json:"down,omitempty"`
}

// Link is a veth pair straight between two containers' network namespaces
// (a `kind: Link` document, containerlab's links): no end on the host.
type Link struct {
	// Name is the Link document's name, which owns it.
	Name string       `json:"name"`
	A    LinkEndpoint `json:"a"`
	B    LinkEndpoint `json:"b"`
}

func (l *Link) ID() string     { return LinkID(l.Name) }
func (l *Link) Kind() Kind     { return KindLink }
func (l *Link) Owner() string  { return l.Name }
func (l *Link) Deps() []string { return []string{NetnsID(l.A.Netns), NetnsID(l.B.Netns)} }

// CarriedBy: the pair goes with either namespace.
func (l *Link) CarriedBy() []string { return l.Deps() }

// LinkID is the resource ID of the link called name.
func LinkID(name string) string { return "link/" + name }
