package main

import (
	"os"

	"hutch/plan"
	"hutch/reconcile"
	"hutch/spec"
)

// labOptions reads what plan.Build needs of the host for a manifest's
// networks, since Build itself reads nothing: the addresses containers
// hold on networks from earlier applies (so IPAM gives them the same ones
// and never gives them to another), and, for a network with NAT, the
// host's resolver settings. It only reads.
func labOptions(m *spec.Manifest, o plan.Options) (plan.Options, error) {
	if len(m.Networks) == 0 {
		return o, nil
	}
	bridges := map[string]string{}
	for _, n := range m.Networks {
		bridges[n.BridgeName()] = n.Metadata.Name
	}
	var err error
	if o.Leases, err = reconcile.NewStore(o).Leases(bridges); err != nil {
		return o, err
	}
	for _, n := range m.Networks {
		if n.Spec.NAT {
			o.ResolvConf = hostResolvConf()
			break
		}
	}
	return o, nil
}

// hostResolvConf is the host's resolver configuration: systemd-resolved's
// list of real upstream servers when it runs (its /etc/resolv.conf names
// only its own 127.0.0.53, which a container cannot reach), else
// /etc/resolv.conf.
func hostResolvConf() string {
	for _, p := range []string{"/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"} {
		if b, err := os.ReadFile(p); err == nil {
			return string(b)
		}
	}
	return ""
}
