//go:build linux

package process

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestCheckRlimits(t *testing.T) {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err != nil {
		t.Fatal(err)
	}
	spec := func(rl ...specs.POSIXRlimit) *specs.Spec {
		return &specs.Spec{Process: &specs.Process{Rlimits: rl}}
	}
	if err := CheckRlimits(spec(specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 64, Hard: 128})); err != nil {
		t.Errorf("lowering: %v", err)
	}
	err := CheckRlimits(spec(specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 64, Hard: cur.Max + 1}))
	if hasEffectiveCap(unix.CAP_SYS_RESOURCE) {
		if err != nil {
			t.Errorf("raising with CAP_SYS_RESOURCE: %v", err)
		}
	} else if err == nil || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
		t.Errorf("raising without CAP_SYS_RESOURCE: %v", err)
	}
	if err := CheckRlimits(spec(specs.POSIXRlimit{Type: "RLIMIT_BOGUS"}, specs.POSIXRlimit{Type: "RLIMIT_CORE", Soft: 2, Hard: 1})); err == nil ||
		!strings.Contains(err.Error(), "RLIMIT_BOGUS: unknown type") || !strings.Contains(err.Error(), "soft limit 2 above the hard limit 1") {
		t.Errorf("bad rlimits: %v", err)
	}
}

func TestParseMountOptions(t *testing.T) {
	flags, prop, data := parseMountOptions([]string{"nosuid", "ro", "rw", "rbind", "rprivate", "mode=755", "size=65536k"})
	if flags != unix.MS_NOSUID|unix.MS_BIND|unix.MS_REC || prop != unix.MS_PRIVATE|unix.MS_REC || data != "mode=755,size=65536k" {
		t.Errorf("flags %#x prop %#x data %q", flags, prop, data)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{"": unix.SIGTERM, "SIGINT": unix.SIGINT, "quit": unix.SIGQUIT, "9": unix.SIGKILL} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := parseSignal("SIGNOPE"); err == nil {
		t.Errorf("parseSignal(SIGNOPE) succeeded")
	}
}

func TestParseRecord(t *testing.T) {
	ts, stream, tag, text, ok := parseRecord([]byte("2026-11-29T04:05:06.1Z stderr P a b c\n"))
	if !ok || ts != "2026-11-29T04:05:06.1Z" || stream != "stderr" || tag != "P" || string(text) != "a b c" {
		t.Errorf("%q %q %q %q %v", ts, stream, tag, text, ok)
	}
}
