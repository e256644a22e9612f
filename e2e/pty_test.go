//go:build linux

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	processdrv "hutch/drivers/process"
	"hutch/internal/testutil"
)

// openPty opens a pty pair on the host's devpts (the process driver's
// OpenPty), the slave in raw output mode.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, s, err := processdrv.OpenPty()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	testutil.RawOutput(t, s)
	return m, s
}

// The seed's web server: a process in it gets a pty of the container's own
// devpts (python's pty.openpty, as script and sshd do), and what the
// container writes to its log reaches `hutch logs` on a terminal with its
// escape sequences shown, not sent, and through a pipe byte for byte.
func TestWebServerPtyAndTerminalSafeLogs(t *testing.T) {
	l := newLab(t)
	l.Apply()
	l.Serving()
	if out := l.Must("exec", l.Name, "--", "python3", "-c", "import os, pty; m, s = pty.openpty(); print(os.ttyname(s))"); out != "/dev/pts/0\n" {
		t.Errorf("pty.openpty inside: %q, want /dev/pts/0", out)
	}

	// The container's pid 1 writes a red "red" and a clear-screen to its
	// stdout, the log.
	const raw = "\x1b[31mred\x1b[0m \x1b[2J\n"
	l.Must("exec", l.Name, "--", "python3", "-c", "import sys; open('/proc/1/fd/1', 'w').write(sys.argv[1])", raw)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if strings.Contains(l.Must("logs", l.Name), raw) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the line never reached the log:\n%q", l.Must("logs", l.Name))
		}
		time.Sleep(20 * time.Millisecond)
	}

	m, s := openPty(t)
	cmd := exec.Command(hutchBin, "--root", l.Root, "logs", l.Name)
	cmd.Stdout = s
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hutch logs on a terminal: %v\n%s", err, stderr.String())
	}
	s.Close()
	var got []byte
	b := make([]byte, 4096)
	for {
		// With the slave closed, the master reads what is left, then EIO.
		n, err := m.Read(b)
		got = append(got, b[:n]...)
		if err != nil {
			break
		}
	}
	if want := `\x1b[31mred\x1b[0m \x1b[2J` + "\n"; !bytes.Contains(got, []byte(want)) || bytes.IndexByte(got, 0x1b) >= 0 {
		t.Errorf("hutch logs on a terminal wrote %q, want %q and no ESC", got, want)
	}
}
