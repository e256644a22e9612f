package reconcile

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"hutch/plan"
)

// states loads every unit's state that loads.
func (s *Store) states() ([]*State, error) {
	names, err := s.Containers()
	if err != nil {
		return nil, err
	}
	var out []*State
	for _, n := range names {
		if st, err := s.Load(n); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// bridgesOf maps the bridge of every network among states to its name.
func bridgesOf(states []*State) map[string]string {
	out := map[string]string{}
	for _, st := range states {
		if st.Kind == "" {
			continue
		}
		for _, rec := range st.Resources {
			if rec.Kind != plan.KindBridge {
				continue
			}
			if r, err := rec.Resource(); err == nil {
				out[r.(*plan.Bridge).Name] = st.Container
			}
		}
	}
	return out
}

// Bridges maps the bridge of every network the store records to the
// network's name.
func (s *Store) Bridges() (map[string]string, error) {
	states, err := s.states()
	if err != nil {
		return nil, err
	}
	return bridgesOf(states), nil
}

// Leases reads, from every container's state, the addresses it holds on
// hutch networks: an address recorded on the inside end of a veth whose
// host end is a port of a network's bridge, the networks being those the
// store records and those bridges adds (bridge name -> network name: a
// manifest's networks, not made yet). Every state is read once.
// plan.Build's IPAM gives each container its lease again, and never gives
// it to another.
func (s *Store) Leases(bridges map[string]string) ([]plan.Lease, error) {
	states, err := s.states()
	if err != nil {
		return nil, err
	}
	known := bridgesOf(states)
	for b, n := range bridges {
		known[b] = n
	}
	var out []plan.Lease
	for _, st := range states {
		if st.Kind != "" {
			continue
		}
		type end struct{ network, netns, iface string }
		var ends []end
		var addrs []*plan.Address
		for _, rec := range st.Resources {
			r, err := rec.Resource()
			if err != nil {
				continue
			}
			switch r := r.(type) {
			case *plan.Veth:
				if net, ok := known[r.Bridge]; ok && r.Bridge != "" {
					ends = append(ends, end{net, r.Netns, r.Peer.Name})
				}
			case *plan.Address:
				addrs = append(addrs, r)
			}
		}
		for _, e := range ends {
			for _, a := range addrs {
				if a.Netns != e.netns || a.Link != e.iface {
					continue
				}
				p, err := netip.ParsePrefix(a.CIDR)
				if err != nil {
					continue
				}
				out = append(out, plan.Lease{Network: e.network, Container: st.Container, Interface: e.iface, Addr: p})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Container != out[j].Container {
			return out[i].Container < out[j].Container
		}
		return out[i].Addr.Addr().Less(out[j].Addr.Addr())
	})
	return out, nil
}

// stillUsed refuses to delete a network that a container not deleted in
// the same run is still plugged into: the bridge would go from under it.
// (A link whose container is deleted goes with the namespace, by the
// kernel; its record stays, and the next apply of both makes it again.)
func (r *Reconciler) stillUsed(units []*unit) error {
	deleting := map[string]bool{}
	bridges := map[string]string{} // bridge -> network being deleted
	for _, u := range units {
		deleting[u.name] = true
		if u.state == nil || u.want != nil {
			continue
		}
		for _, rec := range u.state.Resources {
			if rec.Kind != plan.KindBridge {
				continue
			}
			if res, err := rec.Resource(); err == nil {
				bridges[res.(*plan.Bridge).Name] = u.name
			}
		}
	}
	if len(bridges) == 0 {
		return nil
	}
	states, err := r.Store.states()
	if err != nil {
		return err
	}
	var msgs []string
	for _, st := range states {
		n := st.Container
		if deleting[n] {
			continue
		}
		for _, rec := range st.Resources {
			if rec.Kind != plan.KindVeth {
				continue
			}
			res, err := rec.Resource()
			if err != nil {
				continue
			}
			if net, ok := bridges[res.(*plan.Veth).Bridge]; ok {
				msgs = append(msgs, fmt.Sprintf("network %s: container %s is still on it (delete it first, or both together)", net, n))
			}
		}
	}
	if len(msgs) > 0 {
		sort.Strings(msgs)
		return fmt.Errorf("%s", strings.Join(msgs, "\n"))
	}
	return nil
}

// unitWord names what a unit is, for messages: container, network or link.
func unitWord(st *State) string {
	if st != nil && st.Kind != "" {
		return strings.ToLower(st.Kind)
	}
	return "container"
}
