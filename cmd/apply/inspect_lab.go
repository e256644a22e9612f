package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"hutch/inspect"
)

// writeUnitInspection writes a network or link: JSON, or one section per
// kernel object.
func writeUnitInspection(w io.Writer, in *inspect.Unit, asJSON bool) error {
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
