//go:build linux

package net

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestRetryDump(t *testing.T) {
	for _, c := range []struct {
		name      string
		failures  int
		fail      error
		wantCalls int
		wantErr   error
	}{
		{name: "clean", wantCalls: 1},
		{name: "interrupted twice", failures: 2, fail: netlink.ErrDumpInterrupted, wantCalls: 3},
		{name: "EINTR once", failures: 1, fail: unix.EINTR, wantCalls: 2},
		{name: "always interrupted", failures: 100, fail: netlink.ErrDumpInterrupted, wantCalls: dumpAttempts, wantErr: netlink.ErrDumpInterrupted},
		{name: "other error", failures: 100, fail: unix.EPERM, wantCalls: 1, wantErr: unix.EPERM},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			v, err := retryDump(func() (int, error) {
				calls++
				if calls <= c.failures {
					return -1, c.fail
				}
				return 42, nil
			})
			if calls != c.wantCalls {
				t.Errorf("calls = %d, want %d", calls, c.wantCalls)
			}
			if c.wantErr == nil && (err != nil || v != 42) {
				t.Errorf("got %d, %v; want 42, nil", v, err)
			}
			if c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Errorf("err = %v, want %v", err, c.wantErr)
			}
		})
	}
}
