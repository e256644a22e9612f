//go:build linux

package tutorial

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hutch/internal/testutil"
)

// block is one ```sh block of the tutorial, with the text its output must
// contain (an HTML comment "<!-- output contains: TEXT -->" right after it).
type block struct {
	line   int // of the opening fence
	text   string
	expect string
}

// sh extracts the ```sh blocks of a markdown file, in order. Blocks of any
// other fence language (text, yaml) are not run.
func sh(md []byte) []block {
	var out []block
	var cur *block
	var body []string
	sc := bufio.NewScanner(bytes.NewReader(md))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case cur == nil && line == "```sh":
			cur, body = &block{line: n}, nil
		case cur != nil && line == "```":
			cur.text = strings.Join(body, "\n")
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body = append(body, line)
		case len(out) > 0 && strings.HasPrefix(line, "<!-- output contains: "):
			out[len(out)-1].expect = strings.TrimSuffix(strings.TrimPrefix(line, "<!-- output contains: "), " -->")
		}
	}
	return out
}

func TestShBlocksAreFound(t *testing.T) {
	md := "x\n```sh\necho a\necho b\n```\n<!-- output contains: a -->\n```text\nnot run\n```\n```sh\nls\n```\n"
	got := sh([]byte(md))
	if len(got) != 2 || got[0].text != "echo a\necho b" || got[0].expect != "a" || got[1].text != "ls" || got[1].expect != "" || got[1].line != 10 {
		t.Errorf("sh blocks: %+v", got)
	}
}

// The tutorial's names are the seed's real ones; the test runs only when
// none of them is in use, and removes everything the tutorial made.
func seedNamesInUse() []string {
	var used []string
	if _, err := os.Stat("/var/run/netns/container_ns"); err == nil {
		used = append(used, "netns container_ns (/var/run/netns/container_ns)")
	}
	for _, l := range []string{"veth0", "veth1"} {
		if _, err := net.InterfaceByName(l); err == nil {
			used = append(used, "link "+l)
		}
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.To4()[0] == 172 && ipn.IP.To4()[1] == 16 && ipn.IP.To4()[2] == 0 {
			used = append(used, "address "+ipn.String())
		}
	}
	if d, _ := filepath.Glob("/sys/fs/cgroup/*/hutch/webserver"); len(d) > 0 {
		used = append(used, "cgroup "+d[0])
	}
	return used
}

func TestTutorial(t *testing.T) {
	testutil.RequireRoot(t)
	md, err := os.ReadFile("../docs/tutorial.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := sh(md)
	if len(blocks) < 20 {
		t.Fatalf("docs/tutorial.md: %d sh blocks", len(blocks))
	}
	if used := seedNamesInUse(); len(used) > 0 {
		t.Fatalf("the tutorial uses the seed's real names, and these are taken on this host:\n  %s\n"+
			"remove them (hutch delete webserver; ip netns delete container_ns; ip link delete veth0) or run the test elsewhere",
			strings.Join(used, "\n  "))
	}
	root := t.TempDir()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	seed := &testutil.Lab{T: t, Root: root, Name: "webserver", Netns: "container_ns", HostIf: "veth0"}
	t.Cleanup(func() {
		exec.Command(filepath.Join(repo, "bin", "hutch"), "--root", root, "delete", "--ignore-not-found", "webserver").Run()
		seed.Cleanup() // hutch delete, then whatever is left by hand
		if left := seed.Leftovers(); len(left) > 0 {
			t.Errorf("left behind after the tutorial:\n%s", strings.Join(left, "\n"))
		}
	})

	// One bash runs every block in order, so that what a block exports
	// (PATH) holds for the next ones, as in the reader's shell; a marker
	// before each block tells whose output is whose.
	var script strings.Builder
	script.WriteString("set -eo pipefail\n")
	for i, b := range blocks {
		fmt.Fprintf(&script, "echo '@@block %d@@'\n%s\n", i, b.text)
	}
	script.WriteString("echo '@@end@@'\n")
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "HUTCH_ROOT="+root, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	parts := map[int]string{}
	last := -1
	for _, chunk := range strings.Split(string(out), "@@block ")[1:] {
		var i int
		fmt.Sscanf(chunk, "%d@@", &i)
		_, rest, _ := strings.Cut(chunk, "@@\n")
		parts[i] = rest
		last = i
	}
	if err != nil || !strings.Contains(string(out), "@@end@@") {
		b := blocks[max(last, 0)]
		t.Fatalf("docs/tutorial.md:%d: the block failed (%v):\n%s\n--- output:\n%s", b.line, err, b.text, parts[last])
	}
	for i, b := range blocks {
		if b.expect != "" && !strings.Contains(parts[i], b.expect) {
			t.Errorf("docs/tutorial.md:%d: the output lacks %q:\n%s\n--- output:\n%s", b.line, b.expect, b.text, parts[i])
		}
	}
}
