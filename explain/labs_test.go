package explain

import (
	"strings"
	"testing"

	"hutch/plan"
)

// Every lab resource is explained as its kernel operation and the ip, nft
// or sysctl command that does the same, up and down.
func TestLabSteps(t *testing.T) {
	for _, tc := range []struct {
		r      plan.Resource
		up     string
		down   string
		kernel string
	}{
		{&plan.Bridge{Network: "labnet", Name: "hutch-labnet", MTU: 1400}, "ip link add hutch-labnet mtu 1400 group 1752527971 type bridge", "ip link delete hutch-labnet", "RTM_NEWLINK type bridge"},
		{&plan.NftRule{Network: "labnet", Name: "labnet/masquerade-ipv4", Chain: plan.NftPostrouting, Src: "10.89.0.0/24", NotOIf: "hutch-labnet", Verdict: plan.NftMasquerade},
			`nft add rule inet hutch postrouting ip saddr 10.89.0.0/24 oifname != "hutch-labnet" masquerade comment '"hutch:nftrule/labnet/masquerade-ipv4"'`, "nft delete rule inet hutch postrouting handle $h", "NFT_MSG_NEWRULE"},
		{&plan.NftRule{Network: "labnet", Name: "labnet/isolate", Chain: plan.NftForward, IIfPrefix: "hutch", NotIIf: "hutch-labnet", OIf: "hutch-labnet", Verdict: plan.NftDrop},
			`iifname "hutch*" iifname != "hutch-labnet" oifname "hutch-labnet" drop`, "nft delete rule inet hutch forward", "NFT_MSG_NEWCHAIN"},
		{&plan.Sysctl{Holder: "labnet", Key: "net.ipv4.ip_forward", Value: "1"}, "sysctl -qw net.ipv4.ip_forward=1", `sysctl -qw net.ipv4.ip_forward="$(cat /run/hutch-script/net.ipv4.ip_forward)"`, "/proc/sys/net/ipv4/ip_forward"},
		{&plan.Sysctl{Holder: "router", Netns: "router", Key: "net.ipv4.ip_forward", Value: "1"}, "ip netns exec router sysctl -qw net.ipv4.ip_forward=1", "", "in netns router"},
		{&plan.File{Container: "client", Name: "hosts", Content: "10.89.0.2\tclient\n"}, "cat > containers/client/hosts <<'HUTCH_EOF'\n10.89.0.2\tclient\nHUTCH_EOF", "rm containers/client/hosts", "/etc/hosts"},
		{&plan.Link{Name: "r1", A: plan.LinkEndpoint{Netns: "router", Name: "eth1"}, B: plan.LinkEndpoint{Netns: "server", Name: "eth0"}},
			"ip -n router link add eth1 group 1752527971 type veth peer name eth0 netns server", "ip -n router link delete eth1", "IFLA_NET_NS_FD"},
	} {
		up := Explain(&plan.Change{ID: tc.r.ID(), Kind: tc.r.Kind(), Action: plan.Create, After: tc.r}, nil, Host{})
		if !strings.Contains(strings.Join(up.Shell, "\n"), tc.up) || !strings.Contains(up.Kernel, tc.kernel) {
			t.Errorf("%s up: kernel %q\nshell %q\nwant %q and %q", tc.r.ID(), up.Kernel, up.Shell, tc.kernel, tc.up)
		}
		down := Explain(&plan.Change{ID: tc.r.ID(), Kind: tc.r.Kind(), Action: plan.Delete, Before: tc.r}, nil, Host{})
		if down.Kernel == "" || !strings.Contains(strings.Join(down.Shell, "\n"), tc.down) {
			t.Errorf("%s down: kernel %q shell %q, want %q", tc.r.ID(), down.Kernel, down.Shell, tc.down)
		}
	}
	v := &plan.Veth{Container: "client", Host: plan.LinkEnd{Name: "hutch9bd1f3d155"}, Peer: plan.LinkEnd{Name: "eth0"}, Netns: "client", Bridge: "hutch-labnet"}
	if up := Explain(&plan.Change{ID: v.ID(), Kind: v.Kind(), Action: plan.Create, After: v}, nil, Host{}); !strings.Contains(strings.Join(up.Shell, "\n"), "ip link set hutch9bd1f3d155 master hutch-labnet") {
		t.Errorf("veth on a bridge: %q", up.Shell)
	}
}
