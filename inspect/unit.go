//go:build linux

package inspect

import (
	"context"

	netdrv "hutch/drivers/net"
	"hutch/explain"
	"hutch/plan"
	"hutch/reconcile"
)

// Unit is a network or link as the kernel holds it now.
type Unit struct {
	Name     string             `json:"name"`
	Kind     string             `json:"kind"`
	Manifest string             `json:"manifest"`
	Bridge   *netdrv.Interface  `json:"bridge,omitempty"`
	Ports    []string           `json:"ports,omitempty"`
	Ends     []netdrv.Interface `json:"ends,omitempty"`
	Rules    []Object           `json:"nftRules,omitempty"`
	Sysctls  []Object           `json:"sysctls,omitempty"`
	Warnings []string           `json:"warnings,omitempty"`
}

// Object is one recorded object and what the kernel says of it.
type Object struct {
	ID    string `json:"id"`
	What  string `json:"what"`  // the rule or parameter as hutch wants it
	State string `json:"state"` // as the kernel has it: present, absent, differs, a value
}

// Unit reads a network or link: every object its state records, read from
// the kernel now.
func (r *Reader) Unit(st *reconcile.State) (*Unit, error) {
	in := &Unit{Name: st.Container, Kind: st.Kind, Manifest: st.Manifest.Path}
	for _, rec := range st.Resources {
		res, err := rec.Resource()
		if err != nil {
			return nil, err
		}
		switch res := res.(type) {
		case *plan.Bridge:
			r.bridge(in, res)
		case *plan.NftRule:
			in.Rules = append(in.Rules, r.rule(res))
		case *plan.Sysctl:
			got, err := r.Sysctl.Observe(context.Background(), res)
			in.Sysctls = append(in.Sysctls, Object{ID: res.ID(), What: res.Key + " = " + res.Value, State: observed(got, err, func() string {
				return "now " + got.(*plan.Sysctl).Value
			})})
		case *plan.Link:
			r.linkEnds(in, res)
		}
	}
	return in, nil
}

// bridge reads a network's bridge on the host and its ports.
func (r *Reader) bridge(in *Unit, b *plan.Bridge) {
	ifs, err := r.Net.Interfaces(plan.HostNetns)
	if err != nil {
		in.Warnings = append(in.Warnings, err.Error())
	}
	for i := range ifs {
		if ifs[i].Name == b.Name {
			in.Bridge = &ifs[i]
		}
	}
	if in.Bridge == nil {
		in.Warnings = append(in.Warnings, "bridge "+b.Name+" is not on the host (hutch apply makes it again)")
	}
	if in.Ports, err = r.Net.BridgePorts(b.Name); err != nil {
		in.Warnings = append(in.Warnings, err.Error())
	}
}

// linkEnds reads the two ends of a link, each in its namespace.
func (r *Reader) linkEnds(in *Unit, l *plan.Link) {
	for _, e := range []plan.LinkEndpoint{l.A, l.B} {
		ifs, err := r.Net.Interfaces(e.Netns)
		if err != nil {
			in.Warnings = append(in.Warnings, err.Error())
			continue
		}
		for _, i := range ifs {
			if i.Name == e.Name {
				i.Name = e.Netns + "/" + i.Name
				in.Ends = append(in.Ends, i)
			}
		}
	}
}

// rule reads one of hutch's nftables rules from the kernel.
func (r *Reader) rule(n *plan.NftRule) Object {
	got, err := r.Net.Nft().Observe(context.Background(), n)
	return Object{ID: n.ID(), What: "chain " + n.Chain + ": " + explain.NftText(n), State: observed(got, err, func() string {
		if got.(*plan.NftRule).Differs {
			return "differs (changed by hand; hutch apply puts it back)"
		}
		return "present"
	})}
}

// observed says what the kernel holds of an object a driver observed.
func observed(got plan.Resource, err error, present func() string) string {
	switch {
	case err != nil:
		return "unknown: " + err.Error()
	case got == nil:
		return "absent (hutch apply makes it again)"
	}
	return present()
}
