//go:build linux

package net

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hutch/plan"
)

// sysctlIn reads a parameter with sysctl(8) inside the namespace at path.
func sysctlIn(t *testing.T, path, key string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+path, "sysctl", "-n", key).CombinedOutput()
	if err != nil {
		t.Fatalf("sysctl %s: %v\n%s", key, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Two holders of one parameter: the value is set by the first, kept while
// either holds it, and the original is back after the last goes, with no
// file left in the state folder. Drift by hand is shown and repaired.
func TestSysctlHoldersAndRestore(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ns := mustNetns(t, d, "sysctltest")
	path := d.netnsPath(ns.Name)
	state := filepath.Join(t.TempDir(), "sysctl")
	s := d.Sysctl(state, "", "")
	const key = "net.ipv4.ip_forward"
	// A new namespace may inherit the host's value: start from 0.
	mustRun(t, "nsenter", "--net="+path, "sysctl", "-q", "-w", key+"=0")
	a := &plan.Sysctl{Holder: "neta", Netns: ns.Name, Key: key, Value: "1"}
	b := &plan.Sysctl{Holder: "netb", Netns: ns.Name, Key: key, Value: "1"}
	got, err := s.Observe(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := s.Diff(got, a); strings.Join(f, ",") != "value,holder" {
		t.Errorf("before apply: diff %v", f)
	}
	for _, r := range []*plan.Sysctl{a, b} {
		if err := s.Apply(ctx, create(r)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Observe(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if f, _ := s.Diff(got, r); len(f) != 0 {
			t.Errorf("after apply of %s: diff %v", r.Holder, f)
		}
	}
	if got := sysctlIn(t, path, key); got != "1" {
		t.Errorf("after apply: %s", got)
	}
	// The host's own value is another namespace's: untouched.
	hostBefore, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")

	mustRun(t, "nsenter", "--net="+path, "sysctl", "-q", "-w", key+"=0")
	got, _ = s.Observe(ctx, a)
	if f, _ := s.Diff(got, a); strings.Join(f, ",") != "value" {
		t.Errorf("changed by hand: diff %v", f)
	}
	if err := s.Apply(ctx, &plan.Change{ID: a.ID(), Kind: a.Kind(), Action: plan.Update, Before: got, After: a}); err != nil {
		t.Fatal(err)
	}
	if got := sysctlIn(t, path, key); got != "1" {
		t.Errorf("after repair: %s", got)
	}

	if err := s.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got := sysctlIn(t, path, key); got != "1" {
		t.Errorf("with one holder left: %s", got)
	}
	if err := s.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := sysctlIn(t, path, key); got != "0" {
		t.Errorf("after the last holder: %s, want the original 0", got)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state folder left: %v", err)
	}
	if err := s.Delete(ctx, b); err != nil {
		t.Errorf("delete again: %v", err)
	}
	if hostAfter, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(hostAfter) != string(hostBefore) {
		t.Errorf("the host's ip_forward went from %s to %s", hostBefore, hostAfter)
	}
}

func TestSysctlRefusesBadNames(t *testing.T) {
	s := (&Driver{}).Sysctl(t.TempDir(), "", "")
	for _, r := range []*plan.Sysctl{
		{Holder: "a", Key: "kernel.core_pattern", Value: "x"},
		{Holder: "a", Key: "net.ipv4/../../kernel", Value: "x"},
		{Holder: "../x", Key: "net.ipv4.ip_forward", Value: "1"},
	} {
		if err := s.Apply(context.Background(), create(r)); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
}
