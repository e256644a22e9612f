package plan

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"hutch/spec"
)

// genManifest is a manifest of n containers, each with a namespace, a veth
// pair with addresses on both ends, a default route, a static route and
// limits: the shape of a network lab.
func genManifest(n int) *spec.Manifest {
	m := &spec.Manifest{}
	for i := 0; i < n; i++ {
		a, b := i/250, i%250
		m.Containers = append(m.Containers, &spec.Container{
			APIVersion: spec.APIVersion,
			Kind:       spec.KindContainer,
			Metadata:   spec.Metadata{Name: fmt.Sprintf("c%04d", i)},
			Source:     spec.Source{File: "gen.yaml", Doc: i},
			Spec: spec.ContainerSpec{
				Rootfs:  spec.Rootfs{Binaries: []string{"/bin/busybox"}, Files: []spec.File{{Path: "/etc/motd", Content: fmt.Sprintf("container %d\n", i)}}},
				Process: spec.Process{Args: []string{"/bin/busybox", "sleep", "3600"}},
				Network: &spec.Network{
					Interfaces: []spec.Interface{{
						Name:         "eth0",
						Addresses:    []string{fmt.Sprintf("10.%d.%d.2/24", a, b)},
						DefaultRoute: true,
						Host:         spec.HostEnd{Name: fmt.Sprintf("hv%04d", i), Addresses: []string{fmt.Sprintf("10.%d.%d.1/24", a, b)}},
					}},
					Routes: []spec.Route{{To: "192.168.0.0/16", Via: fmt.Sprintf("10.%d.%d.1", a, b)}},
				},
				Resources: spec.Resources{Memory: "64M", CPU: "0.5", Pids: 100},
			},
		})
	}
	return m
}

func renderAll(t testing.TB, p *Plan) []byte {
	var b bytes.Buffer
	if err := p.JSON(&b); err != nil {
		t.Fatal(err)
	}
	if err := p.Render(&b, RenderOptions{Verbose: true}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPermutationsGiveOnePlan shuffles the documents of a manifest: the
// desired state, the ordered plan and both renderings are the same.
func TestPermutationsGiveOnePlan(t *testing.T) {
	m := load(t, "testdata/manifests/two-containers.yaml")
	m.Containers = append(m.Containers, genManifest(8).Containers...)
	for _, f := range []string{"routes", "dual-stack", "mounts", "process"} {
		m.Containers = append(m.Containers, load(t, "testdata/manifests/"+f+".yaml").Containers...)
	}
	planOf := func(m *spec.Manifest) []byte {
		d, err := Build(m, testOptions(t))
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPlan(Creates(d.Resources()))
		if err != nil {
			t.Fatal(err)
		}
		return renderAll(t, p)
	}
	want := planOf(m)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 50; i++ {
		cp := &spec.Manifest{Containers: append([]*spec.Container(nil), m.Containers...)}
		r.Shuffle(len(cp.Containers), func(a, b int) { cp.Containers[a], cp.Containers[b] = cp.Containers[b], cp.Containers[a] })
		if got := planOf(cp); !bytes.Equal(got, want) {
			t.Fatalf("permutation %d gives another plan", i)
		}
	}
	// Shuffling the changes handed to Order gives the same order too.
	d, err := Build(m, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	cs := Creates(d.Resources())
	for i := 0; i < 50; i++ {
		r.Shuffle(len(cs), func(a, b int) { cs[a], cs[b] = cs[b], cs[a] })
		p, err := NewPlan(cs)
		if err != nil {
			t.Fatal(err)
		}
		if got := renderAll(t, p); !bytes.Equal(got, want) {
			t.Fatalf("shuffled changes %d give another plan", i)
		}
	}
}

// TestOrderProperties gives Order random mixes of actions over real
// resources and checks: teardown comes before build; every create, update
// and create half comes after the changes of the build phase it depends on;
// every delete and delete half comes before the deletes of what it depends
// on; and every change is there (a replace twice, once per half).
func TestOrderProperties(t *testing.T) {
	d, err := Build(genManifest(6), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	rs := d.Resources()
	r := rand.New(rand.NewPCG(3, 4))
	actions := []Action{Create, Update, Replace, Delete, NoOp}
	for round := 0; round < 300; round++ {
		var cs []*Change
		replaces := 0
		for _, res := range rs {
			if r.IntN(5) == 0 {
				continue // no change at all: exists and stays
			}
			c := &Change{ID: res.ID(), Kind: res.Kind(), Action: actions[r.IntN(len(actions))]}
			switch c.Action {
			case Create:
				c.After = res
			case Delete:
				c.Before = res
			default:
				c.Before, c.After = res, res
			}
			if c.Action == Replace {
				replaces++
			}
			cs = append(cs, c)
		}
		r.Shuffle(len(cs), func(a, b int) { cs[a], cs[b] = cs[b], cs[a] })
		got, err := Order(cs)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(got) != len(cs)+replaces {
			t.Fatalf("round %d: %d steps for %d changes with %d replaces", round, len(got), len(cs), replaces)
		}
		teardown := func(c *Change) bool { return c.Action == Delete || c.Half == HalfDelete }
		downAt, upAt := map[string]int{}, map[string]int{}
		lastDown := -1
		for i, c := range got {
			if teardown(c) {
				downAt[c.ID] = i
				lastDown = i
			} else {
				upAt[c.ID] = i
			}
		}
		for i, c := range got {
			if teardown(c) {
				for _, dep := range c.Before.Deps() {
					j, ok := downAt[dep]
					switch carried := slices.Contains(CarriedBy(c.Before), dep); {
					case ok && carried && j > i:
						t.Fatalf("round %d: %s is deleted at %d, before %s, which carries it, at %d", round, c.ID, i, dep, j)
					case ok && !carried && j < i:
						t.Fatalf("round %d: %s is deleted at %d, after its dependency %s at %d", round, c.ID, i, dep, j)
					}
				}
				continue
			}
			if i < lastDown {
				t.Fatalf("round %d: %s %s at %d comes before a teardown step at %d", round, c.Action, c.ID, i, lastDown)
			}
			for _, dep := range c.Resource().Deps() {
				if j, ok := upAt[dep]; ok && j > i {
					t.Fatalf("round %d: %s is made at %d, before its dependency %s at %d", round, c.ID, i, dep, j)
				}
			}
		}
	}
}

// BenchmarkBuildOrderRender runs the whole pure path of `hutch plan` for
// manifests of 1, 10 and 100 containers and reports the cost per container,
// which stays flat when the cost grows linearly.
func BenchmarkBuildOrderRender(b *testing.B) {
	o := DefaultOptions()
	for _, n := range []int{1, 10, 100} {
		m := genManifest(n)
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d, err := Build(m, o)
				if err != nil {
					b.Fatal(err)
				}
				p, err := NewPlan(Creates(d.Resources()))
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Human(io.Discard, false); err != nil {
					b.Fatal(err)
				}
				if err := p.JSON(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/container")
		})
	}
}
