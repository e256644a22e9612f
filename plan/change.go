package plan

// Action is what a change does to one resource. Its value is the word the
// JSON rendering carries ("create"); the human rendering prints its symbol
// instead (symbols: + create, ~ update, -/+ replace, - delete, = no-op).
type Action string

// The actions, as terraform names them.
const (
	NoOp    Action = "no-op"
	Create  Action = "create"
	Update  Action = "update"  // in place
	Replace Action = "replace" // delete, then create
	Delete  Action = "delete"
)

// Change is one step of a plan: the resource ID and kind, the observed value
// (Before, nil when absent), the desired value (After, nil for a delete), the
// names of the fields that differ, and those of them that force a replace.
// Reasons only explain; no decision reads them.
type Change struct {
	ID           string   `json:"id"`
	Kind         Kind     `json:"kind"`
	Action       Action   `json:"action"`
	Before       Resource `json:"before"`
	After        Resource `json:"after"`
	Fields       []string `json:"fields,omitempty"`
	ForceReplace []string `json:"forceReplace,omitempty"`
	Reasons      []string `json:"reasons,omitempty"`
	// Half is set only on the two steps Order makes of a Replace: HalfDelete
	// (remove Before, in teardown order) and HalfCreate (make After, in
	// build order). Both steps carry the same Before, After and fields.
	Half Half `json:"half,omitempty"`
}

// Half names one of the two steps of a replace.
type Half string

// The halves of a replace.
const (
	HalfDelete Half = "delete"
	HalfCreate Half = "create"
)

// Resource returns the value the change is about: After, or Before for a delete.
func (c *Change) Resource() Resource {
	if c.After != nil {
		return c.After
	}
	return c.Before
}
