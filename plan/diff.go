package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// FieldDiff compares the JSON forms of two resources and returns the paths of
// the leaf fields that differ, sorted: "memory.limit", "host.name",
// "dirs[2].mode". A nil resource has no fields, so FieldDiff(nil, r) lists
// every field of r. Drivers may use it for Diff and then decide which of
// the fields force a replace.
func FieldDiff(before, after Resource) []string {
	b := leaves(before)
	a := leaves(after)
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sortPaths(out)
	return out
}

// sortPaths sorts field paths with their list indexes as numbers, so that
// needs[2] comes before needs[10].
func sortPaths(ps []string) {
	key := func(p string) string {
		var b strings.Builder
		for {
			i := strings.IndexByte(p, '[')
			j := strings.IndexByte(p, ']')
			if i < 0 || j < i {
				b.WriteString(p)
				return b.String()
			}
			b.WriteString(p[:i+1])
			fmt.Fprintf(&b, "%012s", p[i+1:j])
			p = p[j:]
		}
	}
	type kp struct{ key, path string }
	ks := make([]kp, len(ps))
	for i, p := range ps {
		ks[i] = kp{key(p), p}
	}
	sort.Slice(ks, func(a, b int) bool { return ks[a].key < ks[b].key })
	for i := range ks {
		ps[i] = ks[i].path
	}
}

// leaves flattens the JSON form of a resource into leaf path -> compact JSON.
func leaves(r Resource) map[string]string {
	out := map[string]string{}
	if r == nil {
		return out
	}
	v, ok := tree(r)
	if !ok {
		return out
	}
	flatten("", v, out)
	return out
}

// tree is the JSON form of v as maps, slices and json.Numbers.
func tree(v any) (any, bool) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var t any
	if err := d.Decode(&t); err != nil {
		return nil, false
	}
	return t, true
}

func flatten(path string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 && path != "" {
			out[path] = "{}"
		}
		for k, e := range x {
			flatten(joinPath(path, k), e, out)
		}
	case []any:
		if len(x) == 0 {
			out[path] = "[]"
		}
		for i, e := range x {
			flatten(path+"["+strconv.Itoa(i)+"]", e, out)
		}
	default:
		out[path] = compact(x)
	}
}

func joinPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func compact(v any) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return "?"
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// valueAt returns the compact JSON of the value at a field path ("a.b[2].c")
// inside the JSON form of r, and whether it is there.
func valueAt(t any, path string) (string, bool) {
	for path != "" {
		var seg string
		if path[0] == '[' {
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return "", false
			}
			i, err := strconv.Atoi(path[1:end])
			s, ok := t.([]any)
			if err != nil || !ok || i < 0 || i >= len(s) {
				return "", false
			}
			t = s[i]
			path = strings.TrimPrefix(path[end+1:], ".")
			continue
		}
		end := strings.IndexAny(path, ".[")
		if end < 0 {
			seg, path = path, ""
		} else {
			seg, path = path[:end], strings.TrimPrefix(path[end:], ".")
		}
		m, ok := t.(map[string]any)
		if !ok {
			return "", false
		}
		if t, ok = m[seg]; !ok {
			return "", false
		}
	}
	return compact(t), true
}
