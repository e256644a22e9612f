//go:build linux

package net

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dumpAttempts bounds the retries of an interrupted netlink dump.
const dumpAttempts = 5

// retryDump runs a netlink dump again while the kernel flags it interrupted
// (NLM_F_DUMP_INTR: the table changed while it was being read, so the
// answer may be incomplete; netlink returns ErrDumpInterrupted) or the
// read was interrupted by a signal (EINTR). After
// dumpAttempts it gives up and returns the error: Observe would rather fail
// than report a half-read table.
func retryDump[T any](dump func() (T, error)) (T, error) {
	var v T
	var err error
	for range dumpAttempts {
		v, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) && !errors.Is(err, unix.EINTR) {
			return v, err
		}
	}
	return v, fmt.Errorf("netlink dump interrupted %d times: %w", dumpAttempts, err)
}

// handle is a rtnetlink socket in one network namespace, with the dumps
// hutch uses wrapped in retryDump.
type handle struct {
	*netlink.Handle
	netns string // the namespace's name, plan.HostNetns for the host
}

// link returns the interface called name, or nil when there is none.
func (h *handle) link(name string) (netlink.Link, error) {
	l, err := retryDump(func() (netlink.Link, error) { return h.LinkByName(name) })
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, nil
	}
	return l, err
}

// linkByIndex returns the interface with index i, or nil when there is none.
func (h *handle) linkByIndex(i int) (netlink.Link, error) {
	l, err := retryDump(func() (netlink.Link, error) { return h.LinkByIndex(i) })
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, nil
	}
	return l, err
}

// addrs dumps the addresses of one family (netlink.FAMILY_ALL for both) on
// link (RTM_GETADDR).
func (h *handle) addrs(link netlink.Link, family int) ([]netlink.Addr, error) {
	return retryDump(func() ([]netlink.Addr, error) { return h.AddrList(link, family) })
}

// routes dumps the routes of one family in one table (RTM_GETROUTE).
func (h *handle) routes(family, table int) ([]netlink.Route, error) {
	return retryDump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(family, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	})
}
