//go:build linux

package net

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"hutch/plan"
)

// The preflight of a published port: before hutch's dnat rule takes a host
// port, nothing on the host may be bound to it (it would never see another
// connection, and the owner would not know why), and the host address it
// names must exist.

// boundSocket is a socket bound to a port in the host's namespace, as
// /proc/net/{tcp,tcp6,udp,udp6} list them; v6 for tcp6 and udp6.
type boundSocket struct {
	addr  netip.Addr
	v6    bool
	inode string
}

// hostIP is the host addresses a socket receives on, as a published port's
// hostIP says them (plan.PortRule.Overlaps): an IPv6 socket bound to :: also
// takes IPv4 unless it is IPV6_V6ONLY, which /proc/net/tcp6 does not show,
// so it counts as every address; one bound to an IPv4-mapped address
// (::ffff:127.0.0.1) takes that IPv4 address.
func (s boundSocket) hostIP() string {
	if s.v6 && s.addr == netip.IPv6Unspecified() {
		return ""
	}
	return s.addr.Unmap().String()
}

// boundTo lists the sockets of the host's namespace bound to port: TCP
// ones listening (state 0A), UDP ones bound. hutch's threads never leave
// the host's namespace, so /proc/self/net is the host's.
func boundTo(proto string, port int) ([]boundSocket, error) {
	var out []boundSocket
	for _, f := range []string{proto, proto + "6"} {
		v6 := strings.HasSuffix(f, "6")
		file, err := os.Open(filepath.Join("/proc/self/net", f))
		if os.IsNotExist(err) {
			continue // no IPv6
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(file)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			local, state, inode := fields[1], fields[3], fields[9]
			if proto == "tcp" && state != "0A" {
				continue
			}
			hexAddr, hexPort, ok := strings.Cut(local, ":")
			p, err := strconv.ParseUint(hexPort, 16, 16)
			if !ok || err != nil || int(p) != port {
				continue
			}
			a, ok := procAddr(hexAddr)
			if !ok {
				continue
			}
			out = append(out, boundSocket{a, v6, inode})
		}
		file.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// procAddr decodes an address of /proc/net/tcp: 32-bit words in the host's
// byte order, printed in hex.
func procAddr(h string) (netip.Addr, bool) {
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}, false
	}
	for i := 0; i+4 <= len(b); i += 4 {
		if nativeLittle {
			b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
		}
	}
	a, ok := netip.AddrFromSlice(b)
	return a, ok
}

var nativeLittle = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// socketOwner names the process holding a socket inode ("pid 812
// (python3)"), by the /proc/PID/fd links that point at it; "" when none is
// found (a socket of another pid namespace's process still shows).
func socketOwner(inode string) string {
	procs, _ := os.ReadDir("/proc")
	target := "socket:[" + inode + "]"
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); l == target {
				comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				return fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(string(comm)))
			}
		}
	}
	return ""
}

// portFree is the preflight of a published port's rule: an error wrapping
// ErrNotOwned names what already holds the port on the host, or that the
// host has no such address. The port's hostIP, as the rule's name keeps
// it, says which of the host's addresses it takes (spec.HostIPsOverlap):
// no hostIP takes the port on every address of both families, even for a
// container with one family, as Docker's published ports do.
func (n *NftDriver) portFree(r *plan.NftRule) error {
	pr, ok := plan.ParsePortRuleName(r.Name)
	if !ok {
		// Not named by plan.PortRuleName: the rule's own match says it.
		pr = plan.PortRule{Container: r.Network, Proto: r.Proto, HostPort: r.DPort, HostIP: r.Dst}
	}
	if r.Dst != "" {
		want, err := netip.ParseAddr(r.Dst)
		if err != nil {
			return fmt.Errorf("nftables rule %s: dst: %w", r.Name, err)
		}
		ifs, err := n.d.Interfaces(plan.HostNetns)
		if err != nil {
			return err
		}
		found := false
		for _, i := range ifs {
			for _, a := range i.Addresses {
				if p, err := netip.ParsePrefix(a); err == nil && p.Addr() == want {
					found = true
				}
			}
		}
		if !found {
			return fmt.Errorf("port %s/%d: the host has no address %s (`ip addr` lists them): %w", r.Proto, r.DPort, want, ErrNotOwned)
		}
	}
	// Another container's published port on a common address.
	rules, err := n.NftRules()
	if err != nil {
		return fmt.Errorf("port %s/%d: %w", r.Proto, r.DPort, err)
	}
	for _, id := range rules[plan.NftPrerouting] {
		other, ok := plan.ParsePortRuleName(strings.TrimPrefix(id, "nftrule/"))
		if ok && other.Container != pr.Container && pr.Overlaps(other) {
			on := ""
			if other.HostIP != "" {
				on = " on " + other.HostIP
			}
			return fmt.Errorf("port %s/%d: already published by container %s%s: %w", r.Proto, r.DPort, other.Container, on, ErrNotOwned)
		}
	}
	socks, err := boundTo(r.Proto, r.DPort)
	if err != nil {
		return fmt.Errorf("port %s/%d: read the host's sockets: %w", r.Proto, r.DPort, err)
	}
	for _, s := range socks {
		if !pr.Overlaps(plan.PortRule{Proto: r.Proto, HostPort: r.DPort, HostIP: s.hostIP()}) {
			continue
		}
		who := socketOwner(s.inode)
		if who == "" {
			who = "socket inode " + s.inode
		}
		return fmt.Errorf("port %s/%d: already bound on the host by %s on %s: %w", r.Proto, r.DPort, who, netip.AddrPortFrom(s.addr, uint16(r.DPort)), ErrNotOwned)
	}
	return nil
}
