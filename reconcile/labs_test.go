package reconcile

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"hutch/plan"
)

// network is a network unit of the fake host: one bridge.
func network(name string) *Container {
	return &Container{Name: name, Kind: "Network", Source: Source{Path: "/manifests/lab.yaml"},
		Resources: []plan.Resource{&plan.Bridge{Network: name, Name: "hutch-" + name}}}
}

// onBridge is web's container with its veth plugged into a bridge.
func onBridge(root, name, bridge string) *Container {
	c := web(name).container(root)
	for _, r := range c.Resources {
		if v, ok := r.(*plan.Veth); ok {
			v.Bridge = bridge
		}
	}
	return c
}

// A network and a container on it: the bridge is made before the veth of
// the other unit, the store records the network's kind (also after a
// no-op apply), leases are read back, the network is not deleted from
// under the container, and both go together, the veth first.
func TestNetworkUnit(t *testing.T) {
	e := newEnv(t)
	net, web := network("labnet"), onBridge(e.root, "web", "hutch-labnet")
	e.mustApply(web, net)
	got := e.host.mutations()
	if b, v := slices.Index(got, "apply create bridge/hutch-labnet"), slices.Index(got, "apply create veth/web0"); b < 0 || v < 0 || b > v {
		t.Errorf("the veth was made before its network's bridge: %q", got)
	}
	if st := e.state("labnet"); st.Kind != "Network" {
		t.Errorf("the network's state kind is %q", st.Kind)
	}
	e.mustApply(web, net)
	if st := e.state("labnet"); st.Kind != "Network" {
		t.Errorf("after a no-op apply the network's state kind is %q", st.Kind)
	}
	bridges, err := e.r.Store.Bridges()
	if err != nil || bridges["hutch-labnet"] != "labnet" {
		t.Errorf("bridges %v, %v", bridges, err)
	}
	leases, err := e.r.Store.Leases(bridges)
	if err != nil || len(leases) != 1 || leases[0] != (plan.Lease{Network: "labnet", Container: "web", Interface: "web1", Addr: netip.MustParsePrefix("172.16.0.2/24")}) {
		t.Errorf("leases %+v, %v", leases, err)
	}

	e.host.reset()
	err = e.r.Delete(context.Background(), []string{"labnet"}, false)
	if err == nil || !strings.Contains(err.Error(), "network labnet: container web is still on it") {
		t.Errorf("delete of the network alone: %v", err)
	}
	if m := e.host.mutations(); len(m) != 0 {
		t.Errorf("a refused delete changed %q", m)
	}
	e.host.reset()
	if err := e.r.Delete(context.Background(), []string{"labnet", "web"}, false); err != nil {
		t.Fatal(err)
	}
	got = e.host.mutations()
	if b, v := slices.Index(got, "delete bridge/hutch-labnet"), slices.Index(got, "delete veth/web0"); b < 0 || v < 0 || b < v {
		t.Errorf("the bridge went before the veth on it: %q", got)
	}
	if objs := e.host.objects(); len(objs) != 0 {
		t.Errorf("left on the host: %v", objs)
	}
}
