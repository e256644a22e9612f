//go:build linux

package net

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"

	"hutch/internal/scan"
	"hutch/plan"
)

// Finding what hutch owns without the state store. `hutch delete` removes
// what the store records; when the store lost its record (its folder was
// removed, an apply was killed before its first write), the marks on the
// host still say what is hutch's: a named namespace whose lo carries the
// alias "hutch:<container>", and a host interface with that alias. Only
// the mark proves ownership, never a name: a namespace made with `ip netns
// add` or an interface without the alias is never returned, whatever it is
// called. The one exception is the proof provenEnd already gives for a veth
// pair stopped before its marks: its peer is in a namespace marked for the
// container and the two ends point at each other.

// validContainer says whether name can be a container's (or network's)
// name in a mark: a DNS label, as validation requires of every name. The
// marks of networks and links ("hutch:net:NAME", "hutch:link:NAME") have a
// colon, which no name has, so they are never taken for a container's.
func validContainer(name string) bool {
	return dnsLabel().MatchString(name)
}

// dnsLabel is compiled on first use, not at package init: every verb of
// the binary, `hutch version` too, pays for what package init does.
var dnsLabel = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`) })

// ErrOtherContainer says that an object hutch wants for one container
// carries hutch's mark for another: the mark, not the store, says whose it
// is, so it is that container's and is neither adopted (apply would
// rewrite the mark and take it over) nor removed (delete would take it from
// under its container). Callers test for it with errors.Is.
var ErrOtherContainer = errors.New("marked for another container")

// otherContainer is the error for what (a netns or veth, named) whose mark
// names owner where container wanted it.
func otherContainer(what, owner, container string) error {
	return fmt.Errorf("%s: %w: it is container %s's (marked %q), not %s's (delete %s first)",
		what, ErrOtherContainer, owner, mark(owner), container, owner)
}

// Owned returns, as plan.Netns values the Delete of this driver accepts,
// the named namespaces under NetnsDir whose loopback device carries the
// mark of container. It only reads: RTM_GETLINK of lo in each namespace.
func (n *NetnsDriver) Owned(ctx context.Context, container string) ([]plan.Resource, error) {
	if !validContainer(container) {
		return nil, fmt.Errorf("netns: find container %q's: not a container name", container)
	}
	marks, err := n.marks(ctx)
	if err != nil {
		return nil, err
	}
	var out []plan.Resource
	for _, name := range marks[container] {
		out = append(out, &plan.Netns{Container: container, Name: name})
	}
	return out, nil
}

// Marked lists the containers that the named namespaces under NetnsDir are
// marked for, sorted.
func (n *NetnsDriver) Marked(ctx context.Context) ([]string, error) {
	marks, err := n.marks(ctx)
	if err != nil {
		return nil, err
	}
	return sortedKeys(marks), nil
}

// marks maps each container to the names of the namespaces marked for it.
// A namespace that is not mounted, or not hutch's, is skipped.
func (n *NetnsDriver) marks(ctx context.Context) (map[string][]string, error) {
	// One scan serves every name of a delete (scan.With).
	return scan.Memo(ctx, "netns-marks:"+n.d.netnsDir, func() (map[string][]string, error) { return n.scanMarks(ctx) })
}

func (n *NetnsDriver) scanMarks(ctx context.Context) (map[string][]string, error) {
	ents, err := os.ReadDir(n.d.netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: find hutch's: %w", err)
	}
	marks := map[string][]string{}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := n.owner(e.Name())
		if errors.Is(err, errNoNetns) || errors.Is(err, ErrNotOwned) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netns %s: find hutch's: %w", e.Name(), err)
		}
		if validContainer(c) {
			marks[c] = append(marks[c], e.Name())
		}
	}
	return marks, nil
}

// Owned returns, as plan.Veth values the Delete of this driver accepts,
// the veth pairs whose host end carries the mark of container, and those
// whose host end is unmarked but proven hutch's by provenEnd (a create
// stopped before the marks). Host and Peer name the two ends and Netns the
// named namespace of the peer; a peer in no named namespace is named like
// the host end, on the host, which Delete only uses once the host end is
// gone, and then finds nothing. It only reads (RTM_GETLINK dumps).
func (v *VethDriver) Owned(ctx context.Context, container string) ([]plan.Resource, error) {
	if !validContainer(container) {
		return nil, fmt.Errorf("veth: find container %q's: not a container name", container)
	}
	host, err := v.d.handle(plan.HostNetns)
	if err != nil {
		return nil, fmt.Errorf("veth: find hutch's: %w", err)
	}
	defer host.Close()
	links, err := scan.Memo(ctx, "host-links", func() ([]netlink.Link, error) { return retryDump(host.LinkList) })
	if err != nil {
		return nil, fmt.Errorf("veth: find hutch's: list links: %w", err)
	}
	// An unmarked pair can only be proven hutch's when its peer is in a
	// namespace marked for container: those namespaces' ids, as the host
	// numbers them (RTM_GETNSID), pick the links worth proving.
	marks, err := (&NetnsDriver{v.d}).marks(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := v.d.netnsIDs(ctx, host)
	if err != nil {
		return nil, err
	}
	nsids := map[int]string{}
	for _, name := range marks[container] {
		if id, ok := ids.byName[name]; ok {
			nsids[id] = name
		}
	}
	var out []plan.Resource
	for _, l := range links {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, marked := owner(l)
		if marked && c != container {
			continue
		}
		w := &plan.Veth{Container: container, Host: plan.LinkEnd{Name: l.Attrs().Name}}
		if marked {
			ph, netns, err := v.d.peerHandle(host, l, ids.byID[l.Attrs().NetNsID])
			if err != nil {
				return nil, fmt.Errorf("veth %s: find peer: %w", w.Host.Name, err)
			}
			w.Peer.Name, w.Netns = w.Host.Name, plan.HostNetns
			if ph != nil {
				peer, err := ph.linkByIndex(l.Attrs().ParentIndex)
				if ph != host {
					ph.Close()
				}
				if err != nil {
					return nil, fmt.Errorf("veth %s: read peer%s: %w", w.Host.Name, in(netns), err)
				}
				if peer != nil {
					w.Peer.Name, w.Netns = peer.Attrs().Name, netns
				}
			}
			out = append(out, w)
			continue
		}
		hint, ok := nsids[l.Attrs().NetNsID]
		if _, veth := l.(*netlink.Veth); !veth || !ok || l.Attrs().Alias != "" {
			continue
		}
		netns, peer, why, err := v.d.provenEnd(host, l, container, hint, nil)
		if err != nil {
			return nil, fmt.Errorf("veth %s: find hutch's: %w", w.Host.Name, err)
		}
		if why != "" {
			continue
		}
		w.Peer.Name, w.Netns = peer.Attrs().Name, netns
		out = append(out, w)
	}
	return out, nil
}

// Marked lists the containers that host interfaces are marked for, sorted.
// An unmarked pair proven hutch's has its peer in a namespace marked for
// its container, which the netns driver's Marked lists.
func (v *VethDriver) Marked(ctx context.Context) ([]string, error) {
	host, err := v.d.handle(plan.HostNetns)
	if err != nil {
		return nil, fmt.Errorf("veth: find hutch's: %w", err)
	}
	defer host.Close()
	links, err := retryDump(host.LinkList)
	if err != nil {
		return nil, fmt.Errorf("veth: find hutch's: list links: %w", err)
	}
	marks := map[string][]string{}
	for _, l := range links {
		if c, ok := owner(l); ok && validContainer(c) {
			marks[c] = append(marks[c], l.Attrs().Name)
		}
	}
	return sortedKeys(marks), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// netnsIDs are the ids the host gives the named namespaces under NetnsDir
// (RTM_GETNSID; a namespace has one once a link of the host points into
// it), both ways.
type netnsIDs struct {
	byID   map[int]string
	byName map[string]int
}

// netnsIDs reads the id of every named namespace once per scan.With
// context. Asking, for each container, which namespace its host end's
// peer lives in by opening the namespaces one by one made a delete of N
// containers open N*N/2 of them (and the kernel's id lookup walks every
// id it has given), so 1000 containers spent 5 s there.
func (d *Driver) netnsIDs(ctx context.Context, host *handle) (netnsIDs, error) {
	return scan.Memo(ctx, "netns-ids:"+d.netnsDir, func() (netnsIDs, error) {
		ids := netnsIDs{byID: map[int]string{}, byName: map[string]int{}}
		ents, err := os.ReadDir(d.netnsDir)
		if errors.Is(err, os.ErrNotExist) {
			return ids, nil
		}
		if err != nil {
			return ids, fmt.Errorf("netns: find hutch's: %w", err)
		}
		for _, e := range ents {
			f, err := openNetns(d.netnsPath(e.Name()))
			if err != nil {
				continue
			}
			id, err := host.GetNetNsIdByFd(int(f.Fd()))
			f.Close()
			if err == nil && id >= 0 {
				ids.byID[id], ids.byName[e.Name()] = e.Name(), id
			}
		}
		return ids, nil
	})
}
