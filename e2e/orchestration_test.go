//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hutch/internal/testutil"
)

// Kill -9 the web server, apply again: the new server answers. The seed's
// server.py cannot rebind while the old connections linger in TIME_WAIT
// in the kept namespace; manifests/webserver.yaml's sets
// allow_reuse_address, and apply watches the new process through its
// start window, so a server that died at its start fails the apply.
func TestKillNineThenApplyAnswers(t *testing.T) {
	l := newLab(t)
	l.Apply()
	l.Serving() // leaves a connection in TIME_WAIT on the server's side
	first := l.get()
	// hutch events follows live: the kill reaches it as an exit event.
	events := exec.Command(hutchBin, "--root", l.Root, "events", "-o", "json", l.Name)
	stdout, err := events.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { events.Process.Kill(); events.Wait() })
	seen := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"type":"exit"`) {
				seen <- sc.Text()
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // events has read where the files end
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case line := <-seen:
		if !strings.Contains(line, `"signal":"SIGKILL"`) || !strings.Contains(line, fmt.Sprintf(`"pid":%d`, first.PID)) {
			t.Errorf("hutch events: %s", line)
		}
	case <-time.After(10 * time.Second):
		t.Error("hutch events showed no exit within 10 s of the kill")
	}
	waitFor(t, "the supervisor records the kill", func() bool { return strings.HasPrefix(l.get().State, "exited") })
	out := l.Apply()
	if !strings.Contains(out, "+ process "+l.Name+" (created,") {
		t.Errorf("apply after kill -9:\n%s", out)
	}
	l.Serving()
	if again := l.get(); again.PID == first.PID || again.State != "running" {
		t.Errorf("after apply: %+v", again)
	}
}

// A process that exits at its start fails the apply with exit status 1,
// its exit status and its log lines; get shows how it ended; the next
// apply tries again.
func TestApplyFailsWhenTheProcessExitsAtStart(t *testing.T) {
	l := newLab(t)
	l.Write(l.Manifest, func(s string) string {
		return strings.Replace(s, "args: [python3, /server.py]",
			`args: [python3, -c, "import sys; print('cannot start: no config'); sys.exit(3)"]`, 1)
	})
	code, out := l.Hutch("apply", "-f", l.Manifest)
	if code != 1 {
		t.Fatalf("apply: exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{
		"! process " + l.Name + " (create failed after",
		"process exited with status 3 within its start window of 1s",
		"\n    cannot start: no config",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("apply's output lacks %q:\n%s", want, out)
		}
	}
	if st := l.get().State; st != "exited" {
		t.Errorf("get -o json: state %q, want exited", st)
	}
	if table := l.Must("get", l.Name); !strings.Contains(table, " exited(3) ") {
		t.Errorf("get's STATE column does not say exited(3):\n%s", table)
	}
	// Everything else it made stays; the next apply starts the process
	// again (and fails again the same way).
	if !testutil.LinkExists(l.HostIf) {
		t.Error("the failed start removed the veth")
	}
	code, out = l.Hutch("apply", "-f", l.Manifest)
	if code != 1 || !strings.Contains(out, "Plan: 1 to create, 0 to update, 0 to replace, 0 to delete") {
		t.Errorf("second apply: exit %d\n%s", code, out)
	}
}

// crew is a manifest of several small containers without a network, with
// unique names, removed at the end of the test.
type crew struct {
	t        *testing.T
	root     string
	manifest string
	names    map[string]string // the manifest's name -> the test's unique one
	labs     []*lab
}

func newCrew(t *testing.T, manifest string, names ...string) *crew {
	t.Helper()
	testutil.RequireRoot(t)
	c := &crew{t: t, root: t.TempDir(), names: map[string]string{}}
	for _, n := range names {
		u := testutil.Name("hk")
		c.names[n] = u
		c.labs = append(c.labs, &lab{&testutil.Lab{T: t, Root: c.root, Name: u, Netns: testutil.Name("hkn"), HostIf: testutil.Name("hkv")}})
	}
	c.manifest = filepath.Join(t.TempDir(), "crew.yaml")
	c.write(manifest)
	t.Cleanup(func() {
		for _, l := range c.labs {
			l.Cleanup()
		}
	})
	return c
}

// write writes the manifest, each <name> replaced by its unique name.
func (c *crew) write(manifest string) {
	c.t.Helper()
	for n, u := range c.names {
		manifest = strings.ReplaceAll(manifest, "<"+n+">", u)
	}
	if err := os.WriteFile(c.manifest, []byte(manifest), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *crew) hutch(args ...string) (int, string) {
	c.t.Helper()
	return c.labs[0].Hutch(args...)
}

// started is when the container's current process started, from its
// supervisor's record.
func (c *crew) started(name string) time.Time {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.root, "containers", c.names[name], "process.json"))
	if err != nil {
		c.t.Fatal(err)
	}
	var st struct {
		Started time.Time `json:"started"`
		Status  string    `json:"status"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Status != "running" {
		c.t.Fatalf("%s: process.json %s (%v)", name, b, err)
	}
	return st.Started
}

func (c *crew) gone() {
	c.t.Helper()
	for _, l := range c.labs {
		l.Gone()
	}
}

const crewDoc = `apiVersion: hutch/v1alpha1
kind: Container
metadata: {name: <%s>}
spec:
  rootfs: {binaries: [/bin/busybox]}
  process:
    args: [/bin/busybox, sleep, "%s"]
    stopTimeout: 200ms
    startWindow: 300ms
`

// dependsOn: each container starts after what it depends on has run
// through its start window; when one is started again, so are those that
// depend on it, and no other; delete stops them in the reverse order.
func TestDependsOnOrder(t *testing.T) {
	m := fmt.Sprintf(crewDoc, "db", "1001") + "---\n" +
		fmt.Sprintf(crewDoc, "api", "1002") + "  dependsOn: [{name: <db>}]\n---\n" +
		fmt.Sprintf(crewDoc, "web", "1003") + "  dependsOn: [{name: <api>}]\n---\n" +
		fmt.Sprintf(crewDoc, "side", "1004")
	c := newCrew(t, m, "db", "api", "web", "side")
	if code, out := c.hutch("apply", "-f", c.manifest); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	db, api, web, side := c.started("db"), c.started("api"), c.started("web"), c.started("side")
	window := 300 * time.Millisecond
	if api.Sub(db) < window || web.Sub(api) < window {
		t.Errorf("starts: db %s, api %s (+%s), web %s (+%s): each should come a start window (%s) after the one it depends on",
			db.Format(time.StampMilli), api.Format(time.StampMilli), api.Sub(db), web.Format(time.StampMilli), web.Sub(api), window)
	}
	if side.Sub(db) > window {
		t.Errorf("side, which depends on nothing, started %s after db", side.Sub(db))
	}
	// db's process changes: db is replaced, api and web restart with it,
	// side stays.
	c.write(strings.Replace(m, `sleep, "1001"`, `sleep, "1011"`, 1))
	code, out := c.hutch("apply", "-f", c.manifest)
	if code != 0 {
		t.Fatalf("second apply: exit %d\n%s", code, out)
	}
	if !c.started("api").After(api) || !c.started("web").After(web) {
		t.Errorf("api and web were not restarted with db:\n%s", out)
	}
	if !c.started("side").Equal(side) {
		t.Errorf("side was restarted:\n%s", out)
	}
	// The replace kept db's events: both starts are there.
	_, evs := c.hutch("events", "--since", "1h", "--no-follow", "-o", "json", c.names["db"])
	if n := strings.Count(evs, `"type":"start"`); n != 2 {
		t.Errorf("db's events after its replace have %d starts, want 2:\n%s", n, evs)
	}
	if code, out := c.hutch("delete", "-f", c.manifest); code != 0 {
		t.Fatalf("delete: exit %d\n%s", code, out)
	}
	c.gone()
}

// waitFor polls cond for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 10 s", what)
}

// manifests/lab.yaml with apply --wait: when it returns, the server
// answers at once (no retry loop), the client started only after the
// server's health check passed, and hutch events -o json has it all as
// one valid JSON object per line, in time order.
func TestLabApplyWaitAndEvents(t *testing.T) {
	w := newLabWorld(t, "lab.yaml", nil)
	out := w.Must("apply", "--wait", "--timeout", "1m", "-f", w.Manifest)
	server, client := w.names["server"], w.names["client"]
	if !strings.Contains(out, "✓ "+server+" healthy") || !strings.Contains(out, "Ready in ") {
		t.Errorf("apply --wait:\n%s", out)
	}
	url := fmt.Sprintf("http://172.16.%d.3:8000/", w.subnet)
	if got, err := run(t, "curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", url); got != "200" {
		t.Errorf("right after apply --wait, curl %s: %q %v", url, got, err)
	}
	if table := w.Must("get", server); !strings.Contains(table, "running(healthy)") {
		t.Errorf("get:\n%s", table)
	}

	lines := strings.Split(strings.TrimSpace(w.Must("events", "--since", "1h", "--no-follow", "-o", "json")), "\n")
	type event struct {
		Time      time.Time `json:"time"`
		Container string    `json:"container"`
		Type      string    `json:"type"`
		PID       int       `json:"pid"`
		Health    string    `json:"health"`
	}
	var evs []event
	var last time.Time
	for _, line := range lines {
		var e event
		var raw map[string]any
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("events line %q: %v", line, err)
		}
		for _, k := range []string{"time", "container", "type"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("events line %q has no %s", line, k)
			}
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("events line %q: %v", line, err)
		}
		if e.Time.Before(last) || time.Since(e.Time) > time.Minute {
			t.Errorf("event %q out of order or not recent", line)
		}
		last = e.Time
		evs = append(evs, e)
	}
	find := func(c, typ string) (event, bool) {
		for _, e := range evs {
			if e.Container == c && e.Type == typ {
				return e, true
			}
		}
		return event{}, false
	}
	sStart, ok1 := find(server, "start")
	sHealthy, ok2 := find(server, "health")
	cStart, ok3 := find(client, "start")
	if !ok1 || !ok2 || !ok3 || sStart.PID <= 0 || sHealthy.Health != "healthy" {
		t.Fatalf("events: %+v", evs)
	}
	if !cStart.Time.After(sHealthy.Time) {
		t.Errorf("the client started at %s, before the server was healthy at %s", cStart.Time, sHealthy.Time)
	}
	w.Must("delete", "-f", w.Manifest)
	w.gone()
}
