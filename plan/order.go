package plan

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrCycle is wrapped by Order's error when resources depend on each other in
// a circle, so that no order can satisfy them.
var ErrCycle = errors.New("dependency cycle")

// Order returns changes in the order they run, in two phases:
//
//  1. teardown: every Delete and the delete half of every Replace, each
//     before the resources it depends on (dependents go first, the reverse
//     of build order), judged by Before.Deps(); except that a Carried
//     resource goes after a carrier torn down in the same phase, as the
//     kernel removes it with the carrier (a veth after its netns);
//  2. build: every Create, Update, NoOp and the create half of every
//     Replace, each after the resources it depends on, judged by
//     After.Deps().
//
// A Replace comes out as two copies of its Change, one with Half set to
// HalfDelete in the teardown phase and one with HalfCreate in the build
// phase; a change whose Half is already set keeps it, so Order of an ordered
// list gives the same list. Within a phase, ties are broken by ID, so the
// result does not depend on the order of the input. A dependency on an ID
// that has no change in the same phase is taken as satisfied (it exists and
// stays, or it is made in the other phase). Two changes with the same ID in a
// phase, and a cycle, are errors; a cycle wraps ErrCycle.
func Order(changes []*Change) ([]*Change, error) {
	var down, up []*Change
	for _, c := range changes {
		if c == nil {
			return nil, fmt.Errorf("order changes: nil change")
		}
		switch {
		case c.Half == HalfDelete:
			down = append(down, c)
		case c.Half == HalfCreate:
			up = append(up, c)
		case c.Action == Delete:
			down = append(down, c)
		case c.Action == Replace:
			d, u := *c, *c
			d.Half, u.Half = HalfDelete, HalfCreate
			down = append(down, &d)
			up = append(up, &u)
		case c.Action == Create, c.Action == Update, c.Action == NoOp:
			up = append(up, c)
		default:
			return nil, fmt.Errorf("order changes: %s: unknown action %q", c.ID, c.Action)
		}
	}
	down, err := topo(down, func(c *Change) Resource { return c.Before }, true)
	if err != nil {
		return nil, fmt.Errorf("order teardown: %w", err)
	}
	up, err = topo(up, func(c *Change) Resource { return c.Resource() }, false)
	if err != nil {
		return nil, fmt.Errorf("order build: %w", err)
	}
	return append(down, up...), nil
}

// topo sorts nodes so that each comes after the nodes its resource depends on
// (reverse false) or before them (reverse true, but after those that carry
// it: Carried), smallest ID first among the
// nodes that are ready (Kahn's algorithm with a heap: O(n log n + edges)).
func topo(nodes []*Change, res func(*Change) Resource, reverse bool) ([]*Change, error) {
	n := len(nodes)
	index := make(map[string]int, n)
	for i, c := range nodes {
		if _, dup := index[c.ID]; dup {
			return nil, fmt.Errorf("%s: two changes for one resource", c.ID)
		}
		index[c.ID] = i
	}
	succ := make([][]int, n)
	indeg := make([]int, n)
	for i, c := range nodes {
		r := res(c)
		if r == nil {
			continue
		}
		for _, d := range r.Deps() {
			j, ok := index[d]
			if !ok {
				continue
			}
			from, to := j, i // the dependency first
			if reverse && !slices.Contains(CarriedBy(r), d) {
				from, to = i, j
			}
			succ[from] = append(succ[from], to)
			indeg[to]++
		}
	}
	h := &idHeap{nodes: nodes}
	for i := range nodes {
		if indeg[i] == 0 {
			h.idx = append(h.idx, i)
		}
	}
	heap.Init(h)
	out := make([]*Change, 0, n)
	for h.Len() > 0 {
		i := heap.Pop(h).(int)
		out = append(out, nodes[i])
		for _, j := range succ[i] {
			indeg[j]--
			if indeg[j] == 0 {
				heap.Push(h, j)
			}
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("%w: %s", ErrCycle, cycle(nodes, succ, indeg))
	}
	return out, nil
}

// cycle finds one circle among the nodes Kahn's algorithm could not place
// (those with indeg > 0) and names it "a -> b -> a", in the direction the
// changes must run.
func cycle(nodes []*Change, succ [][]int, indeg []int) string {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(nodes))
	var stack []int
	var found []int
	var visit func(i int) bool
	visit = func(i int) bool {
		color[i] = grey
		stack = append(stack, i)
		for _, j := range succ[i] {
			if indeg[j] == 0 {
				continue
			}
			if color[j] == grey {
				for k := len(stack) - 1; k >= 0; k-- {
					if stack[k] == j {
						found = append(append([]int(nil), stack[k:]...), j)
						return true
					}
				}
			}
			if color[j] == white && visit(j) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		return false
	}
	// Start from the smallest ID so the message is stable.
	start := -1
	for i := range nodes {
		if indeg[i] > 0 && (start < 0 || nodes[i].ID < nodes[start].ID) {
			start = i
		}
	}
	for _, i := range append([]int{start}, rangeN(len(nodes))...) {
		if i >= 0 && indeg[i] > 0 && color[i] == white && visit(i) {
			break
		}
	}
	ids := make([]string, len(found))
	for k, i := range found {
		ids[k] = nodes[i].ID
	}
	return strings.Join(ids, " -> ")
}

func rangeN(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// idHeap is a min-heap of node indexes ordered by the nodes' IDs.
type idHeap struct {
	nodes []*Change
	idx   []int
}

func (h *idHeap) Len() int           { return len(h.idx) }
func (h *idHeap) Less(a, b int) bool { return h.nodes[h.idx[a]].ID < h.nodes[h.idx[b]].ID }
func (h *idHeap) Swap(a, b int)      { h.idx[a], h.idx[b] = h.idx[b], h.idx[a] }
func (h *idHeap) Push(x any)         { h.idx = append(h.idx, x.(int)) }
func (h *idHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}
