package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"hutch/plan"
)

// fakeHost is a host made of files: one JSON file per object in a folder,
// so that it outlives a process killed by fault injection. It records every
// call its drivers get and can fail the Nth Apply or Delete.
type fakeHost struct {
	dir string

	mu     sync.Mutex
	calls  []string // "apply create veth/veth0", "delete cgroup/web", "observe ..."
	steps  int      // Apply and Delete calls so far
	failAt int      // fail the step with this number (from 1); 0 = never
	failed string   // the call failAt failed
	fail   map[string]error
	force  map[plan.Kind][]string // fields that force a replace, per kind
	// carried lists the resources deleted through DeleteCarried (their
	// carrier went first); they are also among calls as "delete ID".
	carried []string
}

func newFakeHost(t *testing.T) *fakeHost {
	return &fakeHost{dir: t.TempDir(), fail: map[string]error{}, force: fakeForce()}
}

// fakeForce lists the fields that force a replace, per kind, on the fake
// host.
func fakeForce() map[plan.Kind][]string {
	return map[plan.Kind][]string{
		plan.KindRootfs:  {"*"},
		plan.KindProcess: {"*"},
		plan.KindNetns:   {"*"},
		plan.KindVeth:    {"peer.name", "netns"},
	}
}

func (h *fakeHost) path(id string) string { return filepath.Join(h.dir, url.PathEscape(id)+".json") }

func (h *fakeHost) record(s string) {
	h.mu.Lock()
	h.calls = append(h.calls, s)
	h.mu.Unlock()
}

// mutations lists the Apply and Delete calls, without the Observes.
func (h *fakeHost) mutations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.calls {
		if !strings.HasPrefix(c, "observe ") {
			out = append(out, c)
		}
	}
	return out
}

func (h *fakeHost) reset() {
	h.mu.Lock()
	h.calls = nil
	h.mu.Unlock()
}

// objects lists the IDs on the fake host.
func (h *fakeHost) objects() []string {
	ents, _ := os.ReadDir(h.dir)
	var ids []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue // a temporary file of a put cut short by a crash
		}
		id, _ := url.PathUnescape(strings.TrimSuffix(e.Name(), ".json"))
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (h *fakeHost) put(r plan.Resource) {
	data, _ := json.Marshal(r)
	if err := WriteFileAtomic(h.path(r.ID()), data, 0o600); err != nil {
		panic(err)
	}
}

func (h *fakeHost) remove(id string) { os.Remove(h.path(id)) }

func (h *fakeHost) drivers() map[plan.Kind]Driver {
	m := map[plan.Kind]Driver{}
	for _, k := range []plan.Kind{plan.KindRootfs, plan.KindNetns, plan.KindVeth, plan.KindAddress,
		plan.KindRoute, plan.KindCgroup, plan.KindProcess, plan.KindBridge} {
		m[k] = &fakeDriver{h: h, kind: k}
	}
	return m
}

func (h *fakeHost) step(call string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, call)
	h.steps++
	if h.failAt > 0 && h.steps == h.failAt {
		h.failed = call
		return fmt.Errorf("injected failure at step %d", h.steps)
	}
	for k, err := range h.fail {
		if strings.HasSuffix(call, " "+k) {
			return err
		}
	}
	return nil
}

type fakeDriver struct {
	h    *fakeHost
	kind plan.Kind
}

func (d *fakeDriver) Kind() plan.Kind { return d.kind }

func (d *fakeDriver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	d.h.record("observe " + want.ID())
	data, err := os.ReadFile(d.h.path(want.ID()))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	got, err := plan.DecodeResource(d.kind, data)
	if v, ok := got.(*plan.Veth); ok {
		// Like the kernel: a veth whose netns is gone has lost its peer.
		if _, err := os.Stat(d.h.path(plan.NetnsID(v.Netns))); err != nil {
			v.Peer.Name = ""
		}
	}
	return got, err
}

func (d *fakeDriver) Diff(got, want plan.Resource) (fields, force []string) {
	fields = plan.FieldDiff(got, want)
	for _, f := range fields {
		fr := d.h.force[d.kind]
		if slices.Contains(fr, "*") || slices.Contains(fr, f) {
			force = append(force, f)
		}
	}
	return fields, force
}

func (d *fakeDriver) Apply(ctx context.Context, ch *plan.Change) error {
	action := "create"
	if ch.Action == plan.Update {
		action = "update"
	}
	if err := d.h.step("apply " + action + " " + ch.ID); err != nil {
		return err
	}
	d.h.put(ch.After)
	return nil
}

func (d *fakeDriver) Delete(ctx context.Context, r plan.Resource) error {
	if v, ok := r.(*plan.Veth); ok && v.Peer.Name == "" {
		return fmt.Errorf("veth %s: both ends need a name", v.Host.Name)
	}
	if err := d.h.step("delete " + r.ID()); err != nil {
		return err
	}
	d.h.remove(r.ID())
	return nil
}

// DeleteCarried is Delete, recorded in carried as well: a veth of the fake
// host does not vanish with its netns by itself.
func (d *fakeDriver) DeleteCarried(ctx context.Context, r plan.Resource) error {
	d.h.mu.Lock()
	d.h.carried = append(d.h.carried, r.ID())
	d.h.mu.Unlock()
	return d.Delete(ctx, r)
}

// web returns the desired resources of a container shaped like the seed's:
// rootfs, netns, veth with an address at each end, cgroup, process.
type webOpts struct {
	name, netns, host, peer string
	hostAddr, peerAddr      string
	memory                  int64
	file                    string // the content of /server.py
}

func web(name string) webOpts {
	return webOpts{name: name, netns: name + "_ns", host: name + "0", peer: name + "1",
		hostAddr: "172.16.0.1/24", peerAddr: "172.16.0.2/24", memory: 50 << 20, file: "print('hi')"}
}

func (o webOpts) container(root string) *Container {
	opts := plan.Options{StateRoot: root, NetnsDir: "/var/run/netns", CgroupParent: "hutch"}
	bundle := opts.BundleDir(o.name)
	rootfs := &plan.Rootfs{Container: o.name, Bundle: bundle, Binaries: []string{"/bin/sh"},
		Files: []plan.InlineFile{{Path: "/server.py", Mode: 0o644, Content: o.file}}}
	netns := &plan.Netns{Container: o.name, Name: o.netns}
	veth := &plan.Veth{Container: o.name, Host: plan.LinkEnd{Name: o.host}, Peer: plan.LinkEnd{Name: o.peer}, Netns: o.netns}
	ha := &plan.Address{Container: o.name, Netns: plan.HostNetns, Link: o.host, CIDR: o.hostAddr, Veth: veth.ID()}
	pa := &plan.Address{Container: o.name, Netns: o.netns, Link: o.peer, CIDR: o.peerAddr, Veth: veth.ID()}
	cg := &plan.Cgroup{Container: o.name, Path: opts.CgroupPath(o.name), Memory: plan.CgroupMemory{Limit: o.memory}}
	proc := &plan.Process{Container: o.name, Bundle: bundle, Digest: "sha256:" + o.file,
		Needs: []string{rootfs.ID(), cg.ID(), netns.ID(), veth.ID(), ha.ID(), pa.ID()}}
	return &Container{
		Name:      o.name,
		Resources: []plan.Resource{rootfs, netns, veth, ha, pa, cg, proc},
		Config:    []byte(`{"ociVersion":"1.2.0","file":` + fmt.Sprintf("%q", o.file) + "}\n"),
		Source:    Source{Path: "/manifests/" + o.name + ".yaml", Digest: "sha256:x"},
	}
}
