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
