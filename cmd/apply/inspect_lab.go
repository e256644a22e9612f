package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	netdrv "hutch/drivers/net"
	"hutch/explain"
	"hutch/plan"
	"hutch/reconcile"
)

// unitInspection is a network or link as the kernel holds it now.
type unitInspection struct {
	Name     string             `json:"name"`
	Kind     string             `json:"kind"`
	Manifest string             `json:"manifest"`
	Bridge   *netdrv.Interface  `json:"bridge,omitempty"`
	Ports    []string           `json:"ports,omitempty"`
	Ends     []netdrv.Interface `json:"ends,omitempty"`
	Rules    []unitObject       `json:"nftRules,omitempty"`
	Sysctls  []unitObject       `json:"sysctls,omitempty"`
	Warnings []string           `json:"warnings,omitempty"`
}

// unitObject is one recorded object and what the kernel says of it.
type unitObject struct {
	ID    string `json:"id"`
	What  string `json:"what"`  // the rule or parameter as hutch wants it
	State string `json:"state"` // as the kernel has it: present, absent, differs, a value
}

// inspectUnit reads a network or link: every object its state records, read
// from the kernel now.
func inspectUnit(h *host, st *reconcile.State) (*unitInspection, error) {
	net := h.network()
	in := &unitInspection{Name: st.Container, Kind: st.Kind, Manifest: st.Manifest.Path}
	ctx := context.Background()
	for _, rec := range st.Resources {
		r, err := rec.Resource()
		if err != nil {
			return nil, err
		}
		switch r := r.(type) {
		case *plan.Bridge:
			ifs, err := net.Interfaces(plan.HostNetns)
			if err != nil {
				in.Warnings = append(in.Warnings, err.Error())
			}
			for i := range ifs {
				if ifs[i].Name == r.Name {
					in.Bridge = &ifs[i]
				}
			}
			if in.Bridge == nil {
				in.Warnings = append(in.Warnings, "bridge "+r.Name+" is not on the host (hutch apply makes it again)")
			}
			if in.Ports, err = net.BridgePorts(r.Name); err != nil {
				in.Warnings = append(in.Warnings, err.Error())
			}
		case *plan.NftRule:
			in.Rules = append(in.Rules, ruleObject(net, r))
		case *plan.Sysctl:
			got, err := h.sysctl().Observe(ctx, r)
			in.Sysctls = append(in.Sysctls, unitObject{ID: r.ID(), What: r.Key + " = " + r.Value, State: observed(got, err, func() string {
				return "now " + got.(*plan.Sysctl).Value
			})})
		case *plan.Link:
			for _, e := range []plan.LinkEndpoint{r.A, r.B} {
				ifs, err := net.Interfaces(e.Netns)
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
	}
	return in, nil
}

func observed(got plan.Resource, err error, present func() string) string {
	switch {
	case err != nil:
		return "unknown: " + err.Error()
	case got == nil:
		return "absent (hutch apply makes it again)"
	}
	return present()
}

func writeUnitInspection(w io.Writer, in *unitInspection, asJSON bool) error {
	if asJSON {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(in)
	}
	fmt.Fprintf(w, "Name:      %s\nKind:      %s\nManifest:  %s\n", in.Name, in.Kind, in.Manifest)
	if in.Bridge != nil {
		state := "down"
		if in.Bridge.Up {
			state = "up"
		}
		fmt.Fprintf(w, "\nBridge %s (%s, mtu %d, alias %s): %s\n", in.Bridge.Name, state, in.Bridge.MTU, in.Bridge.Alias, strings.Join(in.Bridge.Addresses, " "))
		fmt.Fprintf(w, "Ports (ip link show master %s): %s\n", in.Bridge.Name, orNone(strings.Join(in.Ports, " ")))
	}
	for _, e := range in.Ends {
		state := "down"
		if e.Up {
			state = "up"
		}
		fmt.Fprintf(w, "End %s (%s, mtu %d, %s, alias %s): %s\n", e.Name, state, e.MTU, e.MAC, e.Alias, strings.Join(e.Addresses, " "))
	}
	if len(in.Rules) > 0 {
		fmt.Fprintln(w, "\nnftables rules (table inet hutch):")
		for _, r := range in.Rules {
			fmt.Fprintf(w, "  %s\n    %s\n    %s\n", r.ID, r.What, r.State)
		}
	}
	if len(in.Sysctls) > 0 {
		fmt.Fprintln(w, "\nHost parameters held while the network exists:")
		for _, s := range in.Sysctls {
			fmt.Fprintf(w, "  %s: %s\n", s.What, s.State)
		}
	}
	for _, warn := range in.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	return nil
}

// ruleObject reads one of hutch's nftables rules from the kernel.
func ruleObject(net *netdrv.Driver, r *plan.NftRule) unitObject {
	got, err := net.Nft().Observe(context.Background(), r)
	return unitObject{ID: r.ID(), What: "chain " + r.Chain + ": " + explain.NftText(r), State: observed(got, err, func() string {
		if got.(*plan.NftRule).Differs {
			return "differs (changed by hand; hutch apply puts it back)"
		}
		return "present"
	})}
}
