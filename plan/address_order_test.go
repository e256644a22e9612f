package plan

import (
	"slices"
	"testing"
)

// A host end's address is made after the container end's addresses of
// the same family, so that the host's route to the container appears only
// once the container can answer ARP (a client polling during apply would
// otherwise wait a whole neighbour retrans_time, 1 s).
func TestHostAddressComesAfterTheContainers(t *testing.T) {
	d, err := Build(load(t, "../manifests/webserver.yaml"), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(naiveChanges(nil, d.Resources()))
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, c := range p.Changes {
		pos[c.ID] = i
	}
	host, inside := "address/host/veth0/172.16.0.1/24", "address/container_ns/veth1/172.16.0.2/24"
	var a *Address
	for _, r := range d.Resources() {
		if r.ID() == host {
			a = r.(*Address)
		}
	}
	if a == nil {
		t.Fatalf("no %s among the resources", host)
	}
	if !slices.Contains(a.Deps(), inside) {
		t.Errorf("%s depends on %q, want %s among them", host, a.Deps(), inside)
	}
	if _, ok := pos[inside]; !ok || pos[host] < pos[inside] {
		t.Errorf("plan order: %s at %d, %s at %d; want the host's after", host, pos[host], inside, pos[inside])
	}
}
