//go:build linux

package net

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
	"hutch/plan"
)

// mounted says whether path is a mount point in /proc/self/mountinfo.
func mounted(t testing.TB, path string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

// insideInode is the network namespace inode as a process inside it sees
// it: nsenter joins the namespace by its path and readlink reads its own
// /proc/self/ns/net ("net:[4026532305]").
func insideInode(t testing.TB, path string) uint64 {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+path, "readlink", "/proc/self/ns/net").CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter: %v: %s", err, out)
	}
	s := strings.TrimSpace(string(out))
	n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(s, "net:["), "]"), 10, 64)
	if err != nil {
		t.Fatalf("readlink /proc/self/ns/net inside: %q", s)
	}
	return n
}

func TestNetnsLifecycle(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	nd := d.Netns()
	before := threadNetns(t)
	if len(before) != 1 {
		t.Fatalf("threads in several network namespaces before the test: %v", before)
	}

	ns := mustNetns(t, d, "web")
	path := d.netnsPath(ns.Name)
	if !mounted(t, path) {
		t.Fatalf("%s is not a mount point", path)
	}
	if !mounted(t, d.netnsDir) {
		t.Fatalf("the netns folder %s was not made a mount point", d.netnsDir)
	}
	ino, err := d.NetnsInode(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := insideInode(t, path); got != ino {
		t.Fatalf("NetnsInode = %d, a process inside sees %d", ino, got)
	}
	var host unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &host); err != nil {
		t.Fatal(err)
	}
	if host.Ino == ino {
		t.Fatal("the new namespace is the host's")
	}

	// lo inside: up and marked, as the kernel reports it.
	lo := link(t, nsHandle(t, path), "lo")
	if lo.Attrs().Flags&net.FlagUp == 0 {
		t.Error("lo is down inside the new namespace")
	}
	if lo.Attrs().Alias != "hutch:web" {
		t.Errorf("lo alias = %q, want hutch:web", lo.Attrs().Alias)
	}

	// No thread of this process was left in the new namespace.
	if after := threadNetns(t); len(after) != 1 || cmp.Diff(keys(before), keys(after)) != "" {
		t.Fatalf("threads' network namespaces: before %v, after %v", before, after)
	}

	got, err := nd.Observe(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(plan.Resource(ns), got); diff != "" {
		t.Fatalf("Observe (-want +got):\n%s", diff)
	}
	if f, fr := nd.Diff(got, ns); len(f)+len(fr) != 0 {
		t.Fatalf("Diff of the observed namespace = %v, %v", f, fr)
	}

	// Another container cannot take it over: the mark says it is web's, so
	// Observe, Apply and Delete for api refuse it and leave it as it is.
	moved := &plan.Netns{Container: "api", Name: ns.Name}
	if f, fr := nd.Diff(got, moved); !slicesEq(f, "container") || len(fr) != 0 {
		t.Fatalf("Diff after a container change = %v, %v", f, fr)
	}
	if _, err := nd.Observe(ctx, moved); !errors.Is(err, ErrOtherContainer) || !strings.Contains(err.Error(), "container web's") {
		t.Fatalf("Observe for another container: %v; want an ErrOtherContainer error naming web", err)
	}
	if err := nd.Apply(ctx, update(got, moved)); !errors.Is(err, ErrOtherContainer) {
		t.Fatalf("Apply for another container: %v; want ErrOtherContainer", err)
	}
	if err := nd.Delete(ctx, moved); !errors.Is(err, ErrOtherContainer) {
		t.Fatalf("Delete for another container: %v; want ErrOtherContainer", err)
	}
	if a := link(t, nsHandle(t, path), "lo").Attrs().Alias; a != "hutch:web" {
		t.Fatalf("lo alias after another container's apply = %q", a)
	}
	if ino2, _ := d.NetnsInode(ns.Name); ino2 != ino {
		t.Fatal("the namespace was made anew")
	}
	if _, fr := nd.Diff(got, &plan.Netns{Container: "web", Name: "other"}); !slicesEq(fr, "name") {
		t.Fatalf("a new name must force a replace, got %v", fr)
	}

	if err := nd.Delete(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still there after Delete: %v", path, err)
	}
	if mounted(t, path) {
		t.Fatalf("%s still mounted after Delete", path)
	}
	if got, err := nd.Observe(ctx, ns); err != nil || got != nil {
		t.Fatalf("Observe after Delete = %v, %v; want nil, nil", got, err)
	}
	if err := nd.Delete(ctx, ns); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func slicesEq(got []string, want ...string) bool {
	return cmp.Diff(want, got) == ""
}

// A namespace half gone (unmounted, file left) or half made (the empty file
// of a create that stopped before its mount) is absent for Observe; Apply
// makes it anew and Delete removes the file.
func TestNetnsHalfGone(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	nd := d.Netns()
	ns := mustNetns(t, d, "web")
	path := d.netnsPath(ns.Name)
	old, err := d.NetnsInode(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if got, err := nd.Observe(ctx, ns); err != nil || got != nil {
		t.Fatalf("Observe of an unmounted namespace = %v, %v; want nil, nil", got, err)
	}
	if err := nd.Apply(ctx, create(ns)); err != nil {
		t.Fatalf("Apply over a leftover file: %v", err)
	}
	ino, err := d.NetnsInode(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	if ino == old || insideInode(t, path) != ino {
		t.Fatalf("Apply did not make a new namespace (old %d, new %d)", old, ino)
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := nd.Delete(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Delete left %s: %v", path, err)
	}
}

// A namespace hutch did not make (no mark on its lo, as `ip netns add`
// leaves it) is a conflict: Observe says so and Delete leaves it alone.
func TestNetnsNotOwned(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	nd := d.Netns()
	if err := prepareNetnsDir(d.netnsDir); err != nil {
		t.Fatal(err)
	}
	ns := &plan.Netns{Container: "web", Name: testutil.Name("hutchns")}
	path := d.netnsPath(ns.Name)
	t.Cleanup(func() { removeNetns(path) })
	if err := createNetns(path, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := nd.Observe(ctx, ns); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Observe of a foreign namespace: %v, want ErrNotOwned", err)
	}
	if err := nd.Apply(ctx, create(ns)); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Apply over a foreign namespace: %v, want ErrNotOwned", err)
	}
	if err := nd.Delete(ctx, ns); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Delete of a foreign namespace: %v, want ErrNotOwned", err)
	}
	if !mounted(t, path) {
		t.Fatal("Delete removed a namespace hutch does not own")
	}
	if a := link(t, nsHandle(t, path), "lo").Attrs().Alias; a != "" {
		t.Fatalf("Apply marked a foreign namespace's lo: %q", a)
	}
}

// The real /var/run/netns: `ip netns list` sees the namespace and `ip netns
// exec` runs in it (iproute2 is only an outside check here).
func TestNetnsIproute2(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 is not installed")
	}
	d := New("")
	if d.NetnsDir() != DefaultNetnsDir {
		t.Fatalf("default NetnsDir = %s", d.NetnsDir())
	}
	restoreDefaultNetnsDir(t)
	ctx := context.Background()
	ns := mustNetns(t, d, "web")

	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	if !containsField(string(out), ns.Name) {
		t.Fatalf("ip netns list does not show %s:\n%s", ns.Name, out)
	}
	out, err = exec.Command("ip", "netns", "exec", ns.Name, "ip", "-o", "addr").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "lo    inet 127.0.0.1/8") {
		t.Fatalf("ip netns exec %s ip -o addr shows no 127.0.0.1 on lo (lo up):\n%s", ns.Name, out)
	}
	if err := d.Netns().Delete(ctx, ns); err != nil {
		t.Fatal(err)
	}
	out, _ = exec.Command("ip", "netns", "list").CombinedOutput()
	if containsField(string(out), ns.Name) {
		t.Fatalf("ip netns list still shows %s after Delete:\n%s", ns.Name, out)
	}
}

func containsField(text, word string) bool {
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == word {
			return true
		}
	}
	return false
}

// Many namespaces made and opened at once, from many goroutines: afterwards
// every thread of the process is still in the host's network namespace
// (each switch ran on a locked thread that came back before unlocking).
func TestNetnsThreadsStayHome(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	home := threadNetns(t)
	if len(home) != 1 {
		t.Fatalf("threads in several network namespaces before the test: %v", home)
	}
	const n = 16
	nss := make([]*plan.Netns, n)
	for i := range nss {
		nss[i] = &plan.Netns{Container: "web", Name: testutil.Name("hutchns")}
		t.Cleanup(func() { removeNetns(d.netnsPath(nss[i].Name)) })
	}
	errc := make(chan error, n)
	for _, ns := range nss {
		go func() {
			err := d.Netns().Apply(ctx, create(ns))
			if err == nil {
				_, err = d.Netns().Observe(ctx, ns)
			}
			errc <- err
		}()
	}
	for range n {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint64]bool{}
	for _, ns := range nss {
		ino, err := d.NetnsInode(ns.Name)
		if err != nil {
			t.Fatal(err)
		}
		if seen[ino] {
			t.Fatalf("two names share namespace %d", ino)
		}
		seen[ino] = true
	}
	after := threadNetns(t)
	if diff := cmp.Diff(keys(home), keys(after)); diff != "" {
		t.Fatalf("threads left in other network namespaces (-before +after):\n%s\n%v", diff, after)
	}
}

// restoreDefaultNetnsDir leaves /var/run/netns as the test found it: when it
// was no mount point (or no folder) before and is empty after, the mount
// (or the folder) the test made goes again.
func restoreDefaultNetnsDir(t testing.TB) {
	_, statErr := os.Stat(DefaultNetnsDir)
	wasDir := statErr == nil
	wasMount := mounted(t, "/run/netns") || mounted(t, DefaultNetnsDir)
	t.Cleanup(func() {
		if entries, err := os.ReadDir(DefaultNetnsDir); err != nil || len(entries) > 0 {
			return // someone else's namespaces live there now
		}
		if !wasMount {
			for unix.Unmount(DefaultNetnsDir, unix.MNT_DETACH) == nil {
			}
		}
		if !wasDir {
			os.Remove(DefaultNetnsDir)
		}
	})
}
