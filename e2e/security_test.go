//go:build linux

package e2e

import (
	"strings"
	"testing"
)

// The web server's seccomp filter is Docker's profile, which allows IPv6 and
// netlink sockets: a filter compiled wrong refused both in every container.
func TestWebServerOpensIPv6AndNetlinkSockets(t *testing.T) {
	l := newLab(t)
	l.Apply()
	l.Serving()
	code, out := l.Hutch("exec", l.Name, "--", "python3", "-c",
		"import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); socket.socket(socket.AF_INET6); socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)")
	if code != 0 {
		t.Errorf("AF_INET6 and AF_NETLINK sockets in the web server: exit %d\n%s", code, out)
	}
	// AF_VSOCK is outside Docker's list: the filter still refuses it.
	code, out = l.Hutch("exec", l.Name, "--", "python3", "-c", "import socket; socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)")
	if code != 1 || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("AF_VSOCK socket: exit %d, want 1 with EPERM\n%s", code, out)
	}
}
