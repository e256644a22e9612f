package spec

import (
	"errors"
	"testing"
)

func TestValidateWebserver(t *testing.T) {
	m, err := Load([]string{"../manifests/webserver.yaml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(m); err != nil {
		t.Fatalf("Validate(webserver.yaml):\n%v", err)
	}
}

func TestValidateReportsEverything(t *testing.T) {
	cs, perrs := Parse("two.yaml", []byte(`apiVersion: hutch/v1alpha1
kind: Container
metadata: {name: a}
spec:
  process: {args: [sh]}
  network:
    interfaces:
      - {name: eth0, addresses: [10.0.0.2/24], host: {name: ha0, addresses: [10.0.0.1/24]}}
---
apiVersion: hutch/v1alpha1
kind: Container
metadata: {name: a}
spec:
  process: {args: [sh]}
  network:
    interfaces:
      - {name: eth0, addresses: [10.0.0.2/24], host: {name: ha0, addresses: [10.0.1.1/24]}}
`))
	if perrs != nil {
		t.Fatal(perrs)
	}
	err := Validate(&Manifest{Containers: cs})
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Validate = %v, want Errors", err)
	}
	want := []string{
		"two.yaml:12:18: metadata.name: container \"a\" is defined twice, first at two.yaml:3 (metadata.name of a) (expected a unique name)",
		"two.yaml:12:18: metadata.name: network namespace \"a\" is also used at two.yaml:3 (metadata.name of a) (expected a namespace of its own per container)",
		"two.yaml:17:34: spec.network.interfaces[0].addresses[0]: address 10.0.0.2 is also used at two.yaml:8 (spec.network.interfaces[0].addresses[0] of a) (expected each address once)",
		"two.yaml:17:34: spec.network.interfaces[0].addresses[0]: 10.0.0.2/24 is not in the host end's subnet 10.0.1.0/24 (expected an address in 10.0.1.0/24)",
		"two.yaml:17:61: spec.network.interfaces[0].host.name: host interface \"ha0\" is also named at two.yaml:8 (spec.network.interfaces[0].host.name of a) (expected a unique name on the host)",
	}
	if len(es) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(es), len(want), err)
	}
	for i := range want {
		if es[i].Error() != want[i] {
			t.Errorf("error %d:\n got %s\nwant %s", i, es[i], want[i])
		}
	}
}

// TestValidateBuiltInGo: a container built in Go (no positions) gets the
// same messages as one loaded from a file, not "missing".
func TestValidateBuiltInGo(t *testing.T) {
	c := &Container{APIVersion: APIVersion, Kind: KindContainer, Metadata: Metadata{Name: "web"}}
	c.Spec.Process.Args = []string{"sh"}
	c.Spec.Resources.Memory = "1K"
	err := Validate(&Manifest{Containers: []*Container{c}})
	want := `: spec.resources.memory: 1K is 1024 bytes, below the minimum (expected at least 4M (4194304 bytes), or 0 for no limit)`
	if err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %s", err, want)
	}
	c.Spec.Resources.Memory = "4M"
	if err := Validate(&Manifest{Containers: []*Container{c}}); err != nil {
		t.Errorf("Validate = %v, want nil", err)
	}
}
