//go:build linux

package net

import (
	"fmt"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Interface is one network interface of a namespace as the kernel reports
// it (RTM_GETLINK, RTM_GETADDR): what `ip addr` prints.
type Interface struct {
	Index     int      `json:"index"`
	Name      string   `json:"name"`
	Type      string   `json:"type"` // veth, loopback, ...
	Up        bool     `json:"up"`   // IFF_UP
	MAC       string   `json:"mac,omitempty"`
	MTU       int      `json:"mtu"`
	Alias     string   `json:"alias,omitempty"` // hutch's ownership mark
	Addresses []string `json:"addresses"`       // CIDR notation
}

// KernelRoute is one route of the main table (RTM_GETROUTE): what `ip route`
// prints.
type KernelRoute struct {
	Dst   string `json:"dst"` // "default" for 0.0.0.0/0
	Via   string `json:"via,omitempty"`
	Dev   string `json:"dev"`
	Src   string `json:"src,omitempty"`
	Scope string `json:"scope"`
}

// Interfaces lists the interfaces of the named network namespace
// (plan.HostNetns: the host's) with their addresses, ordered by index.
// It only reads.
func (d *Driver) Interfaces(netns string) ([]Interface, error) {
	h, err := d.handle(netns)
	if err != nil {
		return nil, fmt.Errorf("interfaces%s: %w", in(netns), err)
	}
	defer h.Close()
	links, err := retryDump(h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("interfaces%s: %w", in(netns), err)
	}
	var out []Interface
	for _, l := range links {
		a := l.Attrs()
		i := Interface{Index: a.Index, Name: a.Name, Type: l.Type(), Up: a.Flags&unix.IFF_UP != 0,
			MTU: a.MTU, Alias: a.Alias, Addresses: []string{}}
		if len(a.HardwareAddr) > 0 {
			i.MAC = a.HardwareAddr.String()
		}
		addrs, err := h.addrs(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("link %s%s: addresses: %w", a.Name, in(netns), err)
		}
		for _, ad := range addrs {
			i.Addresses = append(i.Addresses, ad.IPNet.String())
		}
		out = append(out, i)
	}
	sort.Slice(out, func(x, y int) bool { return out[x].Index < out[y].Index })
	return out, nil
}

// Routes lists the routes of the main table of the named network namespace,
// both families.
func (d *Driver) Routes(netns string) ([]KernelRoute, error) {
	h, err := d.handle(netns)
	if err != nil {
		return nil, fmt.Errorf("routes%s: %w", in(netns), err)
	}
	defer h.Close()
	rs, err := h.routes(netlink.FAMILY_ALL, unix.RT_TABLE_MAIN)
	if err != nil {
		return nil, fmt.Errorf("routes%s: %w", in(netns), err)
	}
	out := []KernelRoute{}
	for _, r := range rs {
		kr := KernelRoute{Dst: "default", Scope: r.Scope.String()}
		if r.Dst != nil {
			kr.Dst = r.Dst.String()
		}
		if r.Gw != nil {
			kr.Via = r.Gw.String()
		}
		if r.Src != nil {
			kr.Src = r.Src.String()
		}
		if l, err := h.linkByIndex(r.LinkIndex); err == nil && l != nil {
			kr.Dev = l.Attrs().Name
		}
		out = append(out, kr)
	}
	return out, nil
}
