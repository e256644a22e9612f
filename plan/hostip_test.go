package plan

import "testing"

// hostIP 0.0.0.0 is every address of the host, as validation reads it (a
// second forward of the port on 127.0.0.1 is refused as the same one):
// a dnat to daddr 0.0.0.0 would match no packet.
func TestPortHostIPUnspecified(t *testing.T) {
	d, err := Build(parse(t, doc("a", network, "    ports:\n      - {hostPort: 8080, containerPort: 80, hostIP: 0.0.0.0}")), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range find[*NftRule](d.Container("a")) {
		if r.Verdict != NftDNAT {
			continue
		}
		n++
		if !r.LocalDst || r.Dst != "" {
			t.Errorf("%s: localDst %v, dst %q; want every local address", r.Name, r.LocalDst, r.Dst)
		}
	}
	if n != 2 {
		t.Errorf("%d dnat rules, want 2", n)
	}
}
