package main

import (
	"testing"

	"hutch/plan"
)

// TestParseFault: HUTCH_FAULT's when:kind.action is read strictly, and the
// Fault exits at that point only.
func TestParseFault(t *testing.T) {
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"", true}, {"before:veth.create", true}, {"after:cgroup.update", true}, {"after:process.delete", true},
		{"during:veth.create", false}, {"before:veth", false}, {"before:veth.replace", false}, {"veth.create", false},
	} {
		exited := 0
		f, err := parseFault(tc.value, func() { exited++ })
		if (err == nil) != tc.ok {
			t.Errorf("%s=%q: error %v, want ok=%v", faultEnv, tc.value, err, tc.ok)
		}
		if tc.value == "" && f != nil {
			t.Errorf("no %s gives a fault", faultEnv)
		}
		if !tc.ok || tc.value == "" {
			continue
		}
		// A point that does not match never exits.
		f("before", plan.KindRoute, "create")
		f("during", plan.KindVeth, "create")
		if exited != 0 {
			t.Errorf("%s=%q: exited at another point", faultEnv, tc.value)
		}
	}
	exited := 0
	f, _ := parseFault("after:cgroup.update", func() { exited++ })
	f("before", plan.KindCgroup, "update")
	f("after", plan.KindCgroup, "update")
	if exited != 1 {
		t.Errorf("after:cgroup.update: exited %d times over before and after cgroup.update, want 1", exited)
	}
}
