//go:build linux

// Package net (imported as netdrv) manages named network namespaces, veth
// pairs, addresses and routes through netlink (rtnetlink, via
// github.com/vishvananda/netlink); it never runs `ip`. It touches the host.
//
// New(netnsDir) returns a Driver whose Netns, Veth, Address and Route
// methods return the reconcile drivers of plan.KindNetns, KindVeth,
// KindAddress and KindRoute. docs/network.md lists every step with its
// iproute2 equivalent.
//
// # Namespaces and threads
//
// A named namespace is a network namespace bind-mounted at NetnsDir/NAME
// (default /var/run/netns, where `ip netns` looks). Creating one needs
// unshare(CLONE_NEWNET), which moves the calling thread; hutch does that,
// and opening a netlink socket inside a namespace, on a fresh goroutine
// locked to its thread, and returns the thread home with setns before
// unlocking it. A thread that cannot return stays locked and the Go runtime
// ends it. All other work uses netlink sockets opened inside the namespace,
// which stay bound to it, from any thread.
//
// # Ownership
//
// hutch marks every interface it creates with the alias "hutch:<container>"
// (IFLA_IFALIAS, shown by `ip link` as "alias hutch:web"), and a namespace
// through its loopback device, marked before the namespace is mounted under
// its name. Observe reports an interface or namespace of the wanted name
// without the mark as an ErrNotOwned error; Apply and Delete refuse it, and
// addresses and routes are only touched on marked links. A marked leftover
// of an interrupted apply is observed as it is and finished by Apply.
//
// The kernel takes no alias in the RTM_NEWLINK that creates a veth pair, so
// the marks follow in later messages, and an apply killed in between leaves
// a pair without them. Such a pair is still proven hutch's by where it is:
// one end on the host, the other in a named namespace marked for the same
// container (hutch marks a namespace before it gets its name), the two ends
// pointing at each other by ifindex and namespace id. The veth driver
// observes it unmarked, Apply marks and finishes it, Delete removes it; the
// address and route drivers take its ends as hutch's. A pair made inside
// the namespace by the fallback create is proven the same way while both
// its ends are still there.
package net
