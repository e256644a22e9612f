package explain

import (
	"strconv"
	"strings"

	"hutch/plan"
)

// The steps of networks, links and their files, as kernel operations and
// ip, nft and sysctl commands.

func bridgeUp(r *plan.Bridge) (string, []string) {
	add := "ip link add " + r.Name
	if r.MTU > 0 {
		add += " mtu " + strconv.Itoa(r.MTU)
	}
	add += " group " + strconv.Itoa(0x68757463) + " type bridge"
	return "RTM_NEWLINK type bridge in hutch's device group, then alias hutch:net:" + r.Network + " (IFLA_IFALIAS) and IFF_UP",
		[]string{add, "ip link set " + r.Name + " alias hutch:net:" + r.Network + " up"}
}

// NftText is the rule as nft lists it: its matches and verdict.
func NftText(r *plan.NftRule) string {
	var parts []string
	if r.Src != "" {
		fam := "ip"
		if strings.Contains(r.Src, ":") {
			fam = "ip6"
		}
		parts = append(parts, fam+" saddr "+r.Src)
	}
	if r.LocalSrc {
		parts = append(parts, "fib saddr type local")
	}
	if r.Dst != "" {
		fam := "ip"
		if strings.Contains(r.Dst, ":") {
			fam = "ip6"
		}
		parts = append(parts, fam+" daddr "+r.Dst)
	}
	if r.NotDst != "" {
		fam := "ip"
		if strings.Contains(r.NotDst, ":") {
			fam = "ip6"
		}
		parts = append(parts, fam+" daddr != "+r.NotDst)
	}
	if r.LocalDst {
		parts = append(parts, "fib daddr type local")
	}
	if r.Proto != "" {
		parts = append(parts, r.Proto)
		if r.DPort != 0 {
			parts[len(parts)-1] += " dport " + strconv.Itoa(r.DPort)
		}
	}
	if r.DNATed {
		parts = append(parts, "ct status dnat")
	}
	if r.IIfPrefix != "" {
		parts = append(parts, `iifname "`+r.IIfPrefix+`*"`)
	}
	if r.IIf != "" {
		parts = append(parts, `iifname "`+r.IIf+`"`)
	}
	if r.NotIIf != "" {
		parts = append(parts, `iifname != "`+r.NotIIf+`"`)
	}
	if r.OIf != "" {
		parts = append(parts, `oifname "`+r.OIf+`"`)
	}
	if r.NotOIf != "" {
		parts = append(parts, `oifname != "`+r.NotOIf+`"`)
	}
	verdict := r.Verdict
	if r.To != "" {
		verdict += " ip to " + r.To
		if strings.Contains(r.To, "[") {
			verdict = r.Verdict + " ip6 to " + r.To
		}
	}
	return strings.Join(append(parts, verdict), " ")
}

func nftChainLine(chain string) string {
	switch chain {
	case plan.NftPostrouting:
		return "nft add chain inet hutch postrouting '{ type nat hook postrouting priority srcnat; }'"
	case plan.NftPrerouting:
		return "nft add chain inet hutch prerouting '{ type nat hook prerouting priority dstnat; }'"
	case plan.NftOutput:
		return "nft add chain inet hutch output '{ type nat hook output priority -100; }'"
	default:
		return "nft add chain inet hutch forward '{ type filter hook forward priority filter; policy accept; }'"
	}
}

func nftUp(r *plan.NftRule) (string, []string) {
	return "NFT_MSG_NEWTABLE inet hutch and NFT_MSG_NEWCHAIN " + r.Chain + " when missing, then NFT_MSG_NEWRULE with the comment hutch:" + r.ID() + ", in one nf_tables transaction",
		[]string{"nft add table inet hutch", nftChainLine(r.Chain),
			"nft add rule inet hutch " + r.Chain + " " + NftText(r) + ` comment '"hutch:` + r.ID() + `"'`}
}

func sysctlIn(netns string) string {
	if netns == plan.HostNetns {
		return "sysctl"
	}
	return "ip netns exec " + netns + " sysctl"
}

// sysctlSaved is where the script keeps a host parameter's first value.
func sysctlSaved(key string) string { return "/run/hutch-script/" + key }

func sysctlUp(r *plan.Sysctl) (string, []string) {
	what := "write(2) of /proc/sys/" + strings.ReplaceAll(r.Key, ".", "/") + where(r.Netns) + " (from a thread inside it: /proc/sys/net shows the reader's namespace)"
	if r.Netns == plan.HostNetns {
		what += "; the value found first is kept under the state root and written back when the last holder goes"
		return what, []string{
			"mkdir -p /run/hutch-script; [ -e " + sysctlSaved(r.Key) + " ] || sysctl -n " + r.Key + " > " + sysctlSaved(r.Key),
			"sysctl -qw " + r.Key + "=" + r.Value}
	}
	return what, []string{sysctlIn(r.Netns) + " -qw " + r.Key + "=" + r.Value}
}

func fileUp(r *plan.File) (string, []string) {
	path := "containers/" + r.Container + "/" + r.Name
	tag := "HUTCH_EOF"
	for strings.Contains(r.Content, tag) {
		tag += "_"
	}
	return "write(2) of " + r.Name + " in the container's folder of the state root, in place (O_TRUNC: a bind mount keeps the inode), bind-mounted read-only at " + plan.BundleFiles[r.Name] + " when the process starts",
		[]string{"cat > " + path + " <<'" + tag + "'\n" + r.Content + tag}
}

func linkUp(r *plan.Link) (string, []string) {
	add := "ip -n " + r.A.Netns + " link add " + r.A.Name
	if r.A.MTU > 0 {
		add += " mtu " + strconv.Itoa(r.A.MTU)
	}
	add += " group " + strconv.Itoa(0x68757463) + " type veth peer name " + r.B.Name + " netns " + r.B.Netns
	return "RTM_NEWLINK type veth in " + r.A.Netns + " with the peer made in " + r.B.Netns + " (IFLA_NET_NS_FD), alias hutch:link:" + r.Name + " on both ends, IFF_UP",
		[]string{add,
			"ip -n " + r.A.Netns + " link set " + r.A.Name + " alias hutch:link:" + r.Name + " up",
			"ip -n " + r.B.Netns + " link set " + r.B.Name + " alias hutch:link:" + r.Name + " up"}
}

// labTeardown explains the delete of a lab's resource, or says false.
func labTeardown(r plan.Resource) (string, []string, bool) {
	switch r := r.(type) {
	case *plan.Bridge:
		return "RTM_DELLINK of the bridge (its ports are detached, not removed)", []string{"ip link delete " + r.Name}, true
	case *plan.NftRule:
		return "NFT_MSG_DELRULE of the rule with hutch's comment; its chain and hutch's table go when they are left empty",
			[]string{"for h in $(nft -a list chain inet hutch " + r.Chain + " 2>/dev/null | awk -v id='comment \"hutch:" + r.ID() + "\"' 'index($0, id) {print $NF}'); do nft delete rule inet hutch " + r.Chain + " handle $h; done",
				"nft delete chain inet hutch " + r.Chain + " 2>/dev/null || true   # refused while it holds a rule",
				"nft list table inet hutch 2>/dev/null | grep -q chain || nft delete table inet hutch 2>/dev/null || true"}, true
	case *plan.Sysctl:
		if r.Netns == plan.HostNetns {
			return "the holder's record removed; the last holder writes the value found first back",
				[]string{"if [ -e " + sysctlSaved(r.Key) + " ]; then sysctl -qw " + r.Key + "=\"$(cat " + sysctlSaved(r.Key) + ")\" 2>/dev/null; rm -f " + sysctlSaved(r.Key) + "; rmdir /run/hutch-script 2>/dev/null; fi"}, true
		}
		return "nothing: the parameter goes with the namespace", nil, true
	case *plan.File:
		return "unlink(2) of the bundle file", []string{"rm containers/" + r.Container + "/" + r.Name}, true
	case *plan.Link:
		return "RTM_DELLINK of one end (the kernel removes its peer)", []string{"ip -n " + r.A.Netns + " link delete " + r.A.Name}, true
	}
	return "", nil, false
}

// labUp explains the create of a lab's resource, or says false.
func labUp(r plan.Resource, h Host) (string, []string, bool) {
	switch r := r.(type) {
	case *plan.Bridge:
		k, s := bridgeUp(r)
		return k, s, true
	case *plan.NftRule:
		k, s := nftUp(r)
		return k, s, true
	case *plan.Sysctl:
		k, s := sysctlUp(r)
		return k, s, true
	case *plan.File:
		k, s := fileUp(r)
		return k, s, true
	case *plan.Link:
		k, s := linkUp(r)
		return k, s, true
	}
	return "", nil, false
}
