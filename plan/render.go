package plan

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// RenderOptions say how Render prints a plan for people.
type RenderOptions struct {
	// Color adds ANSI colours; callers set it only when writing to a
	// terminal and NO_COLOR is not set (https://no-color.org).
	Color bool
	// Verbose lists the no-op changes too.
	Verbose bool
}

// Human writes the plan for people: one line per change with its symbol
// (`+` create, `~` update, `-/+` replace, `-` delete), then the fields that
// change as `field: old -> new` (for a create, every field of the new
// resource as `field: value`), and a summary line. No-ops are hidden; see
// Render for the verbose form.
func (p *Plan) Human(w io.Writer, color bool) error {
	return p.Render(w, RenderOptions{Color: color})
}

// symbols are the human rendering's markers per action, as terraform prints them.
var symbols = map[Action]string{
	Create:  "+",
	Update:  "~",
	Replace: "-/+",
	Delete:  "-",
	NoOp:    "=",
}

// colors are ANSI SGR codes per action.
var colors = map[Action]string{
	Create:  "32", // green
	Update:  "33", // yellow
	Replace: "35", // magenta
	Delete:  "31", // red
	NoOp:    "2",  // dim
}

// maxValue is the longest value, in runes, Render prints before cutting it.
const maxValue = 80

// Render writes the plan for people (see Human).
func (p *Plan) Render(w io.Writer, o RenderOptions) error {
	bw := bufio.NewWriter(w)
	paint := func(a Action, s string) string {
		if !o.Color {
			return s
		}
		return "\x1b[" + colors[a] + "m" + s + "\x1b[0m"
	}
	s := p.Summary()
	for _, c := range p.Changes {
		if c.Action == NoOp && !o.Verbose {
			continue
		}
		head := symbols[c.Action] + " " + c.ID
		switch {
		case c.Half == HalfDelete:
			head += " (replace: delete)"
		case c.Half == HalfCreate:
			head += " (replace: create)"
		case c.Action == NoOp:
			head += " (no change)"
		}
		fmt.Fprintln(bw, paint(c.Action, head))
		switch c.Action {
		case Create:
			writeCreate(bw, c.After)
		case Update, Replace:
			if c.Half == HalfCreate {
				// The fields were listed with the delete half.
				continue
			}
			writeFields(bw, c)
		}
	}
	if !s.Changed() {
		fmt.Fprintf(bw, "No changes: the host matches the manifest (%d unchanged).\n", s.NoOp)
	} else {
		if len(p.Changes) > 0 {
			fmt.Fprintln(bw)
		}
		fmt.Fprintf(bw, "Plan: %s.\n", s)
	}
	return bw.Flush()
}

// writeCreate lists every leaf field of a new resource that holds
// something, leaving out the order hutch keeps between resources (needs).
func writeCreate(w io.Writer, r Resource) {
	l := leaves(r)
	keys := make([]string, 0, len(l))
	for k, v := range l {
		if v != "{}" && v != `""` && v != "null" && !internal(r.Kind(), k) { // an empty block or value: nothing set
			keys = append(keys, k)
		}
	}
	sortPaths(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "    %s: %s\n", k, show(r, k, l[k]))
	}
}

// internal says whether a field of a resource of kind k is hutch's own
// bookkeeping rather than something the manifest says: the resources one
// waits for (needs), and a host address's peer, whose neighbour entries it
// sets.
func internal(k Kind, path string) bool {
	under := func(f string) bool {
		return path == f || strings.HasPrefix(path, f+"[") || strings.HasPrefix(path, f+".")
	}
	return under("needs") || (k == KindAddress && under("peer"))
}

// writeFields lists the changed fields as `field: old -> new`, marking those
// that force a replace.
func writeFields(w io.Writer, c *Change) {
	fields := c.Fields
	if len(fields) == 0 {
		fields = FieldDiff(c.Before, c.After)
	}
	force := map[string]bool{}
	for _, f := range c.ForceReplace {
		force[f] = true
	}
	bt, _ := tree(c.Before)
	at, _ := tree(c.After)
	for _, f := range fields {
		if internal(c.Kind, f) {
			continue
		}
		old, ok := valueAt(bt, f)
		if !ok || c.Before == nil {
			old = "(none)"
		}
		nw, ok := valueAt(at, f)
		if !ok || c.After == nil {
			nw = "(none)"
		}
		r := c.After
		if r == nil {
			r = c.Before
		}
		line := fmt.Sprintf("    %s: %s -> %s", f, show(r, f, old), show(r, f, nw))
		if force[f] {
			line += " (forces replace)"
		}
		fmt.Fprintln(w, line)
	}
	for _, r := range c.Reasons {
		fmt.Fprintf(w, "    # %s\n", r)
	}
}

// show is a value of r's field at path as Render prints it, as a
// manifest writes it: file modes in octal, durations as 10s (the JSON
// form holds nanoseconds), sizes in bytes as 50M (52428800); long values
// cut.
func show(r Resource, path, v string) string {
	if path == "mode" || strings.HasSuffix(path, ".mode") {
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			return fmt.Sprintf("%04o", n)
		}
	}
	if f, ok := fieldAt(reflect.TypeOf(r), path); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err != nil:
		case f.Type == reflect.TypeOf(time.Duration(0)):
			return time.Duration(n).String()
		case f.Tag.Get("show") == "bytes":
			return showBytes(n)
		}
	}
	return cut(v)
}

// fieldAt finds the struct field of t at a leaf path ("logs.maxSize",
// "health.interval", "addresses[0]") by the fields' JSON names.
func fieldAt(t reflect.Type, path string) (reflect.StructField, bool) {
	var f reflect.StructField
	for _, seg := range strings.Split(path, ".") {
		if i := strings.IndexByte(seg, '['); i >= 0 {
			seg = seg[:i]
		}
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice) {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			return f, false
		}
		found := false
		for i := 0; i < t.NumField(); i++ {
			if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name == seg {
				f, found = t.Field(i), true
				break
			}
		}
		if !found {
			return f, false
		}
		t = f.Type
	}
	return f, true
}

// showBytes writes a size as spec.ParseMemory reads it, with the bytes:
// 52428800 is "50M (52428800)"; a size that is no whole number of KiB
// stays as it is.
func showBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s (%d)", n/u.size, u.suffix, n)
		}
	}
	return strconv.FormatInt(n, 10)
}

// cut shortens a long value to maxValue runes and says how long it was.
func cut(s string) string {
	if utf8.RuneCountInString(s) <= maxValue {
		return s
	}
	r := []rune(s)
	return fmt.Sprintf("%s… (%d bytes)", string(r[:maxValue-8]), len(s))
}

// jsonPlan is the JSON form of a Plan, format version 1 (docs/plan-format.md).
type jsonPlan struct {
	FormatVersion string       `json:"formatVersion"`
	Summary       Summary      `json:"summary"`
	Changes       []jsonChange `json:"changes"`
}

type jsonChange struct {
	Action       Action          `json:"action"`
	Half         Half            `json:"half,omitempty"`
	ID           string          `json:"id"`
	Kind         Kind            `json:"kind"`
	Before       json.RawMessage `json:"before"`
	After        json.RawMessage `json:"after"`
	Fields       []string        `json:"fields"`
	ForceReplace []string        `json:"forceReplace"`
	Reasons      []string        `json:"reasons,omitempty"`
}

// JSON writes the plan in its versioned JSON form (docs/plan-format.md),
// indented, no-ops included.
func (p *Plan) JSON(w io.Writer) error {
	jp := jsonPlan{FormatVersion: FormatVersion, Summary: p.Summary(), Changes: []jsonChange{}}
	if p.FormatVersion != "" {
		jp.FormatVersion = p.FormatVersion
	}
	for _, c := range p.Changes {
		jc := jsonChange{
			Action: c.Action, Half: c.Half, ID: c.ID, Kind: c.Kind,
			Fields: c.Fields, ForceReplace: c.ForceReplace, Reasons: c.Reasons,
		}
		if jc.Fields == nil {
			jc.Fields = []string{}
		}
		if jc.ForceReplace == nil {
			jc.ForceReplace = []string{}
		}
		var err error
		if jc.Before, err = rawResource(c.Before); err != nil {
			return fmt.Errorf("plan json: %s: before: %w", c.ID, err)
		}
		if jc.After, err = rawResource(c.After); err != nil {
			return fmt.Errorf("plan json: %s: after: %w", c.ID, err)
		}
		jp.Changes = append(jp.Changes, jc)
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	if err := e.Encode(jp); err != nil {
		return fmt.Errorf("plan json: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func rawResource(r Resource) (json.RawMessage, error) {
	if r == nil {
		return json.RawMessage("null"), nil
	}
	return json.Marshal(r)
}

// ReadJSON reads a plan written by JSON. The order of the changes is kept as
// written.
func ReadJSON(r io.Reader) (*Plan, error) {
	var jp jsonPlan
	d := json.NewDecoder(r)
	d.DisallowUnknownFields()
	if err := d.Decode(&jp); err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if jp.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("read plan: format version %q, this hutch reads %q", jp.FormatVersion, FormatVersion)
	}
	p := &Plan{FormatVersion: jp.FormatVersion}
	for _, jc := range jp.Changes {
		c := &Change{ID: jc.ID, Kind: jc.Kind, Action: jc.Action, Half: jc.Half, Reasons: jc.Reasons}
		if len(jc.Fields) > 0 {
			c.Fields = jc.Fields
		}
		if len(jc.ForceReplace) > 0 {
			c.ForceReplace = jc.ForceReplace
		}
		var err error
		if c.Before, err = decodeRaw(jc.Kind, jc.Before); err != nil {
			return nil, fmt.Errorf("read plan: %s: before: %w", jc.ID, err)
		}
		if c.After, err = decodeRaw(jc.Kind, jc.After); err != nil {
			return nil, fmt.Errorf("read plan: %s: after: %w", jc.ID, err)
		}
		p.Changes = append(p.Changes, c)
	}
	return p, nil
}

func decodeRaw(k Kind, raw json.RawMessage) (Resource, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	return DecodeResource(k, raw)
}
