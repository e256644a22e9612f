package spec

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a manifest, at a place in a file.
type Error struct {
	File      string
	Line, Col int    // 0 when the problem has no place (an unreadable file)
	Path      string // field path, "spec.network.interfaces[0].name"
	Msg       string // what is wrong (what was expected)

	doc    int    // index of the document in File, to match load and validation errors
	covers string // a field path this error also explains (a misspelled field's intended name)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found, sorted by file and place.
type Errors []*Error

func (es Errors) Error() string {
	es.Sort()
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Sort orders the errors by file, line, column and path.
func (es Errors) Sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Path < b.Path
	})
}
