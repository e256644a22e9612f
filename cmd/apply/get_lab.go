package main

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"

	"hutch/plan"
	"hutch/reconcile"
)

// splitUnits separates the store's containers from its networks and links
// (whose state.json names their kind), keeping the order of names.
func splitUnits(store *reconcile.Store, names []string) (containers []string, units []*reconcile.State) {
	for _, n := range names {
		st, err := store.Load(n)
		if err == nil && st.Kind != "" {
			units = append(units, st)
			continue
		}
		containers = append(containers, n)
	}
	return containers, units
}

// writeUnits prints the networks and links after the containers: a
// network's bridge, gateways and the containers plugged into it, a link's
// two ends.
func writeUnits(w io.Writer, store *reconcile.Store, units []*reconcile.State) error {
	if len(units) == 0 {
		return nil
	}
	on := map[string][]string{} // bridge -> containers
	if names, err := store.Containers(); err == nil {
		for _, n := range names {
			st, err := store.Load(n)
			if err != nil || st.Kind != "" {
				continue
			}
			for _, rec := range st.Resources {
				if rec.Kind != plan.KindVeth {
					continue
				}
				if r, err := rec.Resource(); err == nil && r.(*plan.Veth).Bridge != "" {
					on[r.(*plan.Veth).Bridge] = append(on[r.(*plan.Veth).Bridge], n)
				}
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var links []string
	header := false
	for _, st := range units {
		var bridge string
		var gws, ends []string
		nat := "no"
		for _, rec := range st.Resources {
			r, err := rec.Resource()
			if err != nil {
				continue
			}
			switch r := r.(type) {
			case *plan.Bridge:
				bridge = r.Name
			case *plan.Address:
				gws = append(gws, r.CIDR)
			case *plan.NftRule:
				if r.Verdict == plan.NftMasquerade {
					nat = "yes"
				}
			case *plan.Link:
				ends = append(ends, r.A.Netns+"/"+r.A.Name+" <-> "+r.B.Netns+"/"+r.B.Name)
			}
		}
		if st.Kind == "Link" {
			links = append(links, fmt.Sprintf("%s\t%s", st.Container, strings.Join(ends, ", ")))
			continue
		}
		if !header {
			fmt.Fprintln(tw, "\nNETWORK\tBRIDGE\tGATEWAYS\tNAT\tCONTAINERS")
			header = true
		}
		sort.Strings(on[bridge])
		members := strings.Join(on[bridge], ",")
		if members == "" {
			members = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Container, bridge, strings.Join(gws, ","), nat, members)
	}
	if len(links) > 0 {
		fmt.Fprintln(tw, "\nLINK\tENDS (NETNS/INTERFACE)")
		for _, l := range links {
			fmt.Fprintln(tw, l)
		}
	}
	return tw.Flush()
}

// publishedPorts are a container's published ports, from its recorded
// prerouting dnat rules: "0.0.0.0:8080->8000/tcp", "[::]:8080->8000/tcp"
// for IPv6 (the host address when one is given).
func publishedPorts(st *reconcile.State) []string {
	var out []string
	for _, rec := range st.Resources {
		if rec.Kind != plan.KindNftRule {
			continue
		}
		r, err := rec.Resource()
		if err != nil {
			continue
		}
		n := r.(*plan.NftRule)
		if n.Verdict != plan.NftDNAT || n.Chain != plan.NftPrerouting {
			continue
		}
		host := "0.0.0.0"
		if strings.HasPrefix(n.To, "[") {
			host = "::"
		}
		if n.Dst != "" {
			host = n.Dst
		}
		to := n.To[strings.LastIndex(n.To, ":")+1:]
		at := fmt.Sprintf("%s:%d", host, n.DPort)
		if a, err := netip.ParseAddr(host); err == nil {
			at = netip.AddrPortFrom(a, uint16(n.DPort)).String() // [::]:8080
		}
		out = append(out, fmt.Sprintf("%s->%s/%s", at, to, n.Proto))
	}
	sort.Strings(out)
	return out
}
