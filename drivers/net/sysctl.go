//go:build linux

package net

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"hutch/plan"
)

// SysctlDriver manages network namespaces' kernel parameters
// (plan.KindSysctl): /proc/sys/net/..., read and written from a thread
// inside the namespace (`ip netns exec NS sysctl -w KEY=VALUE`), since
// /proc/sys/net shows the parameters of the reader's network namespace.
//
// The value a parameter had before hutch first changed it is kept in
// stateDir/SCOPE/KEY/original, and each holder that wants it has a file
// in stateDir/SCOPE/KEY/holders/. Deleting the last holder writes the
// original value back and removes the folder: the host's ip_forward goes
// back to 0 when the last network that needed it is deleted.
type SysctlDriver struct {
	d        *Driver
	stateDir string
	// hostDir keeps the host's parameters (scope "host"), shared by every
	// state root on the host and kept apart from them: a state root lost
	// or removed by hand would otherwise take the value to restore with
	// it, and two roots would each take the other's change for the
	// original. Its holders are HOLDER@ROOTID, rootID naming this root.
	hostDir, rootID string
}

// Sysctl is the reconcile driver of plan.KindSysctl, keeping what it must
// restore of namespaces' parameters under stateDir (ROOT/sysctl) and of the
// host's under hostDir (/run/hutch/sysctl: they are the boot's), its
// holders there marked with rootID.
func (d *Driver) Sysctl(stateDir, hostDir, rootID string) *SysctlDriver {
	return &SysctlDriver{d: d, stateDir: stateDir, hostDir: hostDir, rootID: rootID}
}

// DefaultHostSysctlDir is where the host's parameters' first values are
// kept.
const DefaultHostSysctlDir = "/run/hutch/sysctl"

// holderFile is the name of a holder's record.
func (s *SysctlDriver) holderFile(sc *plan.Sysctl) string {
	if sc.Netns == plan.HostNetns && s.rootID != "" {
		return sc.Holder + "@" + s.rootID
	}
	return sc.Holder
}

// base is the folder a parameter's records live under.
func (s *SysctlDriver) base(netns string) string {
	if netns == plan.HostNetns && s.hostDir != "" {
		return s.hostDir
	}
	return s.stateDir
}

// Kind is plan.KindSysctl.
func (s *SysctlDriver) Kind() plan.Kind { return plan.KindSysctl }

// sysctlKey is the form a key must have: net., then dotted words. The
// manifest's list of allowed keys is spec's; this only keeps a key from
// naming a path outside /proc/sys/net. Compiled on first use (see dnsLabel).
var sysctlKey = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^net(\.[A-Za-z0-9_-]+)+$`) })

func asSysctl(r plan.Resource) (*plan.Sysctl, error) {
	sc, ok := r.(*plan.Sysctl)
	if !ok || sc == nil {
		return nil, fmt.Errorf("sysctl driver: resource %T is not a *plan.Sysctl", r)
	}
	if !sysctlKey().MatchString(sc.Key) {
		return nil, fmt.Errorf("sysctl %q: not a net.* parameter", sc.Key)
	}
	for _, name := range []string{sc.Holder, sc.Netns} {
		if strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
			return nil, fmt.Errorf("sysctl %s: %q cannot name a file", sc.Key, name)
		}
	}
	if sc.Holder == "" {
		return nil, fmt.Errorf("sysctl %s: no holder", sc.Key)
	}
	return sc, nil
}

// procPath is the parameter's file under /proc/sys.
func procPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

// scope names the parameter's namespace in the state folder.
func scope(netns string) string {
	if netns == plan.HostNetns {
		return "host"
	}
	return "netns-" + netns
}

func (s *SysctlDriver) keyDir(sc *plan.Sysctl) string {
	return filepath.Join(s.base(sc.Netns), scope(sc.Netns), sc.Key)
}

// inNetns runs fn on a thread in the parameter's namespace. It returns
// an error wrapping errNoNetns when the namespace is not mounted.
func (s *SysctlDriver) inNetns(netns string, fn func() error) error {
	if netns == plan.HostNetns {
		return onThreadIn(nil, fn)
	}
	f, err := openNetns(s.d.netnsPath(netns))
	if err != nil {
		return fmt.Errorf("netns %s: %w", netns, err)
	}
	defer f.Close()
	return onThreadIn(f, fn)
}

func (s *SysctlDriver) read(sc *plan.Sysctl) (string, error) {
	var v string
	err := s.inNetns(sc.Netns, func() error {
		b, err := os.ReadFile(procPath(sc.Key))
		v = strings.TrimSpace(string(b))
		return err
	})
	return v, err
}

func (s *SysctlDriver) write(sc *plan.Sysctl, value string) error {
	return s.inNetns(sc.Netns, func() error {
		return os.WriteFile(procPath(sc.Key), []byte(value), 0)
	})
}

// Observe reads the parameter: nil when its namespace is gone, else its
// value now.
func (s *SysctlDriver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	w, err := asSysctl(want)
	if err != nil {
		return nil, err
	}
	v, err := s.read(w)
	if errors.Is(err, errNoNetns) || errors.Is(err, fs.ErrNotExist) {
		// The namespace, or the interface the parameter is of, is not
		// there (yet).
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sysctl %s%s: read: %w", w.Key, in(w.Netns), err)
	}
	got := *w
	got.Value = v
	if _, err := os.Stat(filepath.Join(s.keyDir(w), "holders", s.holderFile(w))); err != nil {
		// Not recorded as held: Apply records it (and the original).
		got.Holder = ""
	}
	return &got, nil
}

// Diff: a parameter's value changes in place. Values compare as the kernel
// prints them, with runs of blanks as one ("4096 87380 6291456").
func (s *SysctlDriver) Diff(got, want plan.Resource) (fields, forceReplace []string) {
	g, ok1 := got.(*plan.Sysctl)
	w, ok2 := want.(*plan.Sysctl)
	if !ok1 || !ok2 || g == nil || w == nil {
		return []string{"type"}, []string{"type"}
	}
	if strings.Join(strings.Fields(g.Value), " ") != strings.Join(strings.Fields(w.Value), " ") {
		fields = append(fields, "value")
	}
	if g.Holder != w.Holder {
		fields = append(fields, "holder")
	}
	return fields, nil
}

// Apply records the parameter's value before hutch's first change (once,
// whoever holds it), records the holder, then writes the wanted value.
func (s *SysctlDriver) Apply(ctx context.Context, ch *plan.Change) error {
	w, err := asSysctl(ch.After)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := s.keyDir(w)
	if err := os.MkdirAll(filepath.Join(dir, "holders"), 0o700); err != nil {
		return fmt.Errorf("sysctl %s%s: %w", w.Key, in(w.Netns), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "original")); errors.Is(err, fs.ErrNotExist) {
		v, err := s.read(w)
		if err != nil {
			return fmt.Errorf("sysctl %s%s: read: %w", w.Key, in(w.Netns), err)
		}
		if err := writeAtomic(filepath.Join(dir, "original"), v); err != nil {
			return fmt.Errorf("sysctl %s%s: keep the original value: %w", w.Key, in(w.Netns), err)
		}
	}
	if err := writeAtomic(filepath.Join(dir, "holders", s.holderFile(w)), ""); err != nil {
		return fmt.Errorf("sysctl %s%s: record holder %s: %w", w.Key, in(w.Netns), w.Holder, err)
	}
	if err := s.write(w, w.Value); err != nil {
		return fmt.Errorf("sysctl %s%s: write %s: %w", w.Key, in(w.Netns), w.Value, err)
	}
	return nil
}

// writeAtomic writes a small file through a temporary name and rename(2),
// so a kill never leaves it half written.
func writeAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Delete drops the holder; when no holder is left, the original value is
// written back (unless the namespace is gone with it) and the record goes.
func (s *SysctlDriver) Delete(ctx context.Context, r plan.Resource) error {
	w, err := asSysctl(r)
	if err != nil {
		return err
	}
	dir := s.keyDir(w)
	if err := os.Remove(filepath.Join(dir, "holders", s.holderFile(w))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sysctl %s%s: drop holder %s: %w", w.Key, in(w.Netns), w.Holder, err)
	}
	left, err := os.ReadDir(filepath.Join(dir, "holders"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sysctl %s%s: %w", w.Key, in(w.Netns), err)
	}
	if len(left) > 0 {
		return nil
	}
	orig, err := os.ReadFile(filepath.Join(dir, "original"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("sysctl %s%s: %w", w.Key, in(w.Netns), err)
	default:
		// A parameter of an interface that is gone (a veth deleted with its
		// container) has nothing left to restore.
		err := s.write(w, string(orig))
		if err != nil && !errors.Is(err, errNoNetns) && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sysctl %s%s: restore %s: %w", w.Key, in(w.Netns), orig, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("sysctl %s%s: %w", w.Key, in(w.Netns), err)
	}
	// Remove the emptied scope folder and state folder too.
	os.Remove(filepath.Dir(dir))
	base := s.base(w.Netns)
	os.Remove(base)
	if base == s.hostDir {
		os.Remove(filepath.Dir(base)) // /run/hutch, when it holds nothing else
	}
	return nil
}
