//go:build linux

package net

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"

	"hutch/internal/scan"
	"hutch/plan"
)

// The finders of a network's objects (reconcile.Finder), for a delete whose
// state store lost the network: bridges by their alias hutch:net:NAME,
// nftables rules by their comment hutch:nftrule/NAME/..., the host's
// parameters by their holder records. Links need none: a link goes with the
// namespaces of its containers, which the netns finder finds.

// bridgesMarked lists the host's bridges hutch marked, by network.
func (b *BridgeDriver) bridgesMarked(ctx context.Context) (map[string][]string, error) {
	h, err := b.d.handle(plan.HostNetns)
	if err != nil {
		return nil, fmt.Errorf("bridge: find hutch's: %w", err)
	}
	defer h.Close()
	links, err := scan.Memo(ctx, "host-links", func() ([]netlink.Link, error) { return retryDump(h.LinkList) })
	if err != nil {
		return nil, fmt.Errorf("bridge: find hutch's: list links: %w", err)
	}
	out := map[string][]string{}
	for _, l := range links {
		if n, ok := strings.CutPrefix(l.Attrs().Alias, netMarkPrefix); ok && l.Type() == "bridge" && validContainer(n) {
			out[n] = append(out[n], l.Attrs().Name)
		}
	}
	return out, nil
}

// Owned returns the bridges marked for network.
func (b *BridgeDriver) Owned(ctx context.Context, network string) ([]plan.Resource, error) {
	if !validContainer(network) {
		return nil, fmt.Errorf("bridge: find network %q's: not a network name", network)
	}
	marks, err := b.bridgesMarked(ctx)
	if err != nil {
		return nil, err
	}
	var out []plan.Resource
	for _, name := range marks[network] {
		out = append(out, &plan.Bridge{Network: network, Name: name})
	}
	return out, nil
}

// Marked lists the networks that bridges are marked for.
func (b *BridgeDriver) Marked(ctx context.Context) ([]string, error) {
	marks, err := b.bridgesMarked(ctx)
	if err != nil {
		return nil, err
	}
	return sortedKeys(marks), nil
}

// rulesMarked lists hutch's rules by network: each rule's ID says its
// network ("nftrule/NETWORK/WHAT").
func (n *NftDriver) rulesMarked(ctx context.Context) (map[string][]*plan.NftRule, error) {
	rules, err := scan.Memo(ctx, "nft-rules:"+n.netns, n.NftRules)
	if err != nil {
		return nil, fmt.Errorf("nftables: find hutch's: %w", err)
	}
	out := map[string][]*plan.NftRule{}
	for chain, ids := range rules {
		for _, id := range ids {
			name, ok := strings.CutPrefix(id, "nftrule/")
			network, _, ok2 := strings.Cut(name, "/")
			if !ok || !ok2 || !validContainer(network) {
				continue
			}
			out[network] = append(out[network], &plan.NftRule{Network: network, Name: name, Chain: chain})
		}
	}
	return out, nil
}

// Owned returns the rules whose comment names network, as values Delete
// accepts (its ID and chain are all Delete needs).
func (n *NftDriver) Owned(ctx context.Context, network string) ([]plan.Resource, error) {
	if !validContainer(network) {
		return nil, fmt.Errorf("nftables: find network %q's: not a network name", network)
	}
	marks, err := n.rulesMarked(ctx)
	if err != nil {
		return nil, err
	}
	var out []plan.Resource
	for _, r := range marks[network] {
		out = append(out, r)
	}
	return out, nil
}

// Marked lists the networks that hutch's rules name.
func (n *NftDriver) Marked(ctx context.Context) ([]string, error) {
	marks, err := n.rulesMarked(ctx)
	if err != nil {
		return nil, err
	}
	return sortedKeys(marks), nil
}

// holders lists the host parameters each holder holds, from the records
// under the state folder (host/KEY/holders/HOLDER).
func (s *SysctlDriver) holders() (map[string][]string, error) {
	keys, err := os.ReadDir(filepath.Join(s.base(plan.HostNetns), "host"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sysctl: find hutch's: %w", err)
	}
	out := map[string][]string{}
	for _, k := range keys {
		if !sysctlKey().MatchString(k.Name()) {
			continue
		}
		hs, err := os.ReadDir(filepath.Join(s.base(plan.HostNetns), "host", k.Name(), "holders"))
		if err != nil {
			continue
		}
		for _, h := range hs {
			// Only this state root's holders.
			name := h.Name()
			if s.rootID != "" {
				var ok bool
				if name, ok = strings.CutSuffix(name, "@"+s.rootID); !ok {
					continue
				}
			}
			if validContainer(name) {
				out[name] = append(out[name], k.Name())
			}
		}
	}
	for _, ks := range out {
		sort.Strings(ks)
	}
	return out, nil
}

// Owned returns the host parameters holder holds.
func (s *SysctlDriver) Owned(ctx context.Context, holder string) ([]plan.Resource, error) {
	if !validContainer(holder) {
		return nil, fmt.Errorf("sysctl: find %q's: not a network name", holder)
	}
	hs, err := s.holders()
	if err != nil {
		return nil, err
	}
	var out []plan.Resource
	for _, k := range hs[holder] {
		out = append(out, &plan.Sysctl{Holder: holder, Netns: plan.HostNetns, Key: k})
	}
	return out, nil
}

// Marked lists the holders of host parameters.
func (s *SysctlDriver) Marked(ctx context.Context) ([]string, error) {
	hs, err := s.holders()
	if err != nil {
		return nil, err
	}
	return sortedKeys(hs), nil
}
