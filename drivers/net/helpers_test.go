//go:build linux

package net

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"hutch/internal/testutil"
	"hutch/plan"
)

// The tests check the kernel through the netlink library directly (handles
// opened with netns.GetFromPath and netlink.NewHandleAt), not through the
// driver's own reading code.

// tempDriver returns a driver whose NetnsDir is a fresh temporary folder.
// The driver makes that folder a mount point; the cleanup unmounts it
// before the folder is removed.
func tempDriver(t testing.TB) *Driver {
	t.Helper()
	testutil.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "netns")
	t.Cleanup(func() {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			removeNetns(filepath.Join(dir, e.Name()))
		}
		for unix.Unmount(dir, unix.MNT_DETACH) == nil {
		}
	})
	return New(dir)
}

// mustNetns creates a hutch namespace for the test, removed in Cleanup.
func mustNetns(t testing.TB, d *Driver, container string) *plan.Netns {
	t.Helper()
	ns := &plan.Netns{Container: container, Name: testutil.Name("hutchns")}
	t.Cleanup(func() {
		if err := removeNetns(d.netnsPath(ns.Name)); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := d.Netns().Apply(context.Background(), create(ns)); err != nil {
		t.Fatal(err)
	}
	return ns
}

// mustVeth creates a hutch veth pair whose peer is in ns, removed in Cleanup.
func mustVeth(t testing.TB, d *Driver, ns *plan.Netns) *plan.Veth {
	t.Helper()
	v := &plan.Veth{
		Container: ns.Container,
		Host:      plan.LinkEnd{Name: testutil.Name("hv")},
		Peer:      plan.LinkEnd{Name: testutil.Name("pv")},
		Netns:     ns.Name,
	}
	t.Cleanup(func() { delLink(t, "", v.Host.Name) })
	if err := d.Veth().Apply(context.Background(), create(v)); err != nil {
		t.Fatal(err)
	}
	return v
}

func create(r plan.Resource) *plan.Change {
	return &plan.Change{ID: r.ID(), Kind: r.Kind(), Action: plan.Create, After: r}
}

func update(before, after plan.Resource) *plan.Change {
	return &plan.Change{ID: after.ID(), Kind: after.Kind(), Action: plan.Update, Before: before, After: after}
}

// nsHandle opens a netlink handle in the namespace mounted at path ("" =
// the host's), through the library's own NewHandleAt.
func nsHandle(t testing.TB, path string) *netlink.Handle {
	t.Helper()
	if path == "" {
		h, err := netlink.NewHandle()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		return h
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// delLink removes a link the test made, if it is still there.
func delLink(t testing.TB, path, name string) {
	t.Helper()
	var h *netlink.Handle
	var err error
	if path == "" {
		h, err = netlink.NewHandle()
	} else {
		var ns netns.NsHandle
		if ns, err = netns.GetFromPath(path); err != nil {
			return // the namespace, and the link with it, is gone
		}
		h, err = netlink.NewHandleAt(ns)
		ns.Close()
	}
	if err != nil {
		t.Errorf("cleanup %s: %v", name, err)
		return
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return
	}
	if err := h.LinkDel(l); err != nil {
		t.Errorf("cleanup %s: %v", name, err)
	}
}

// link reads a link through the library; nil when it is missing.
func link(t testing.TB, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// subnet returns a random /30 of 198.18.0.0/15 (the range RFC 2544 keeps
// for benchmarks: nothing on this host uses it) and a random /64 of the
// ULA prefix fd68:7574:6368::/48, as the host and peer addresses of one
// test's veth pair. The addresses live only on the test's own veth pair, so
// all traffic stays between the host and the test's namespace.
func subnet() (host4, peer4, host6, peer6 string) {
	var b [4]byte
	rand.Read(b[:])
	third := int(b[0]) | int(b[1]&1)<<8 // 0-511 over 198.18 and 198.19
	base := int(b[2]&0x3f) * 4
	v4 := fmt.Sprintf("198.%d.%d.", 18+third/256, third%256)
	v6 := fmt.Sprintf("fd68:7574:6368:%02x%02x::", b[3], b[0])
	// netip writes each address in its one canonical form, the way the
	// kernel's answers are printed back.
	canon := func(cidr string) string { return netip.MustParsePrefix(cidr).String() }
	return canon(fmt.Sprintf("%s%d/30", v4, base+1)), canon(fmt.Sprintf("%s%d/30", v4, base+2)),
		canon(v6 + "1/64"), canon(v6 + "2/64")
}

// ip strips the prefix of a CIDR.
func ip(cidr string) string {
	i := strings.IndexByte(cidr, '/')
	return cidr[:i]
}

// threadNetns lists the network namespaces of every thread of this process
// (/proc/self/task/*/ns/net), to check that none was left elsewhere.
func threadNetns(t testing.TB) map[string][]string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, task := range tasks {
		ns, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err != nil {
			continue // the thread exited
		}
		out[ns] = append(out[ns], task.Name())
	}
	return out
}
