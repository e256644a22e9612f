//go:build linux

package net

import (
	"context"
	"io"
	"net"
	"os"
	"testing"
)

// TCP from the host end to a listener inside the test's own namespace, over
// IPv4 and IPv6: the pair, its addresses and lo-up work together. The
// listener's socket is opened inside the namespace; traffic goes only to
// the namespace's own address. The link counters must count it.
func TestTrafficHostToNetns(t *testing.T) {
	d := tempDriver(t)
	ctx := context.Background()
	ns, v, as := addresses(t, d)
	for _, a := range as {
		if err := d.Address().Apply(ctx, create(a)); err != nil {
			t.Fatal(err)
		}
	}
	nsFile, err := os.Open(d.netnsPath(ns.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer nsFile.Close()
	before, err := d.LinkStats("", v.Host.Name)
	if err != nil {
		t.Fatal(err)
	}
	peerBefore, err := d.LinkStats(ns.Name, v.Peer.Name)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ host, peer string }{{ip(as[0].CIDR), ip(as[2].CIDR)}, {ip(as[1].CIDR), ip(as[3].CIDR)}} {
		var ln net.Listener
		err := onThreadIn(nsFile, func() error {
			var err error
			ln, err = net.Listen("tcp", net.JoinHostPort(c.peer, "0"))
			return err
		})
		if err != nil {
			t.Fatalf("listen inside the namespace on %s: %v", c.peer, err)
		}
		defer ln.Close()
		type accepted struct {
			remote string
			msg    string
			err    error
		}
		done := make(chan accepted, 1)
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				done <- accepted{err: err}
				return
			}
			defer conn.Close()
			b, err := io.ReadAll(conn)
			host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
			done <- accepted{remote: host, msg: string(b), err: err}
		}()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatalf("connect from the host to %s: %v", ln.Addr(), err)
		}
		if _, err := conn.Write([]byte("hello " + c.peer)); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		got := <-done
		if got.err != nil {
			t.Fatal(got.err)
		}
		if got.msg != "hello "+c.peer || got.remote != c.host {
			t.Fatalf("inside got %q from %s, want %q from the host end %s", got.msg, got.remote, "hello "+c.peer, c.host)
		}
	}

	after, err := d.LinkStats("", v.Host.Name)
	if err != nil {
		t.Fatal(err)
	}
	peerAfter, err := d.LinkStats(ns.Name, v.Peer.Name)
	if err != nil {
		t.Fatal(err)
	}
	if after.TxPackets <= before.TxPackets || after.TxBytes <= before.TxBytes {
		t.Errorf("host end tx: before %+v, after %+v", before, after)
	}
	if peerAfter.RxPackets-peerBefore.RxPackets < after.TxPackets-before.TxPackets {
		t.Errorf("the peer received fewer packets (%d) than the host end sent (%d)",
			peerAfter.RxPackets-peerBefore.RxPackets, after.TxPackets-before.TxPackets)
	}
	if _, err := d.LinkStats("", "hutchnosuchlnk"); err == nil {
		t.Error("LinkStats of a missing link: no error")
	}
}
