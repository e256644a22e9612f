package plan

import "fmt"

// FormatVersion is the version of the JSON form of a Plan (docs/plan-format.md).
// It changes when a field is removed or changes meaning; new fields do not
// change it.
const FormatVersion = "1"

// Plan is the ordered list of changes that make the host match the manifest.
// It is a value: `hutch plan` renders it (Human, JSON) and `hutch apply` runs
// exactly these changes in this order. Changes is in Order's order: teardown
// first (deletes and the delete halves of replaces, dependents first), then
// build (creates, updates, no-ops and the create halves of replaces,
// dependencies first).
type Plan struct {
	FormatVersion string
	Changes       []*Change
}

// NewPlan orders changes (see Order) and returns them as a Plan.
func NewPlan(changes []*Change) (*Plan, error) {
	ordered, err := Order(changes)
	if err != nil {
		return nil, err
	}
	return &Plan{FormatVersion: FormatVersion, Changes: ordered}, nil
}

// Summary counts the changes of a plan per action. A replace counts once,
// although the plan holds its two halves.
type Summary struct {
	Create  int `json:"create"`
	Update  int `json:"update"`
	Replace int `json:"replace"`
	Delete  int `json:"delete"`
	NoOp    int `json:"noOp"`
}

// Changed reports whether anything would change on the host.
func (s Summary) Changed() bool {
	return s.Create+s.Update+s.Replace+s.Delete > 0
}

func (s Summary) String() string {
	return fmt.Sprintf("%d to create, %d to update, %d to replace, %d to delete, %d unchanged",
		s.Create, s.Update, s.Replace, s.Delete, s.NoOp)
}

// Summary counts the plan's changes per action.
func (p *Plan) Summary() Summary {
	var s Summary
	for _, c := range p.Changes {
		switch c.Action {
		case Create:
			s.Create++
		case Update:
			s.Update++
		case Replace:
			if c.Half != HalfDelete {
				s.Replace++
			}
		case Delete:
			s.Delete++
		case NoOp:
			s.NoOp++
		}
	}
	return s
}

// Creates returns a Create change for each resource: the plan against a host
// that has none of them.
func Creates(rs []Resource) []*Change {
	cs := make([]*Change, len(rs))
	for i, r := range rs {
		cs[i] = &Change{ID: r.ID(), Kind: r.Kind(), Action: Create, After: r}
	}
	return cs
}
