package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Load reads every document of the given sources: a file, a folder (its
// *.yaml and *.yml files, sorted, not recursive) or "-" for stdin. Decoding is
// strict: unknown fields, duplicate keys and values of the wrong type are
// errors, all reported at once as Errors, each with file:line:col and the
// field path. Load does not validate values; Validate does.
func Load(sources []string, stdin io.Reader) (*Manifest, error) {
	m := &Manifest{}
	var errs Errors
	for _, src := range sources {
		files, err := expand(src)
		if err != nil {
			errs = append(errs, &Error{File: src, Msg: err.Error()})
			continue
		}
		for _, f := range files {
			var data []byte
			if f == "-" {
				if stdin == nil {
					stdin = os.Stdin
				}
				data, err = io.ReadAll(stdin)
				f = "<stdin>"
			} else {
				data, err = os.ReadFile(f)
			}
			if err != nil {
				errs = append(errs, &Error{File: f, Msg: err.Error()})
				continue
			}
			fm, ferrs := ParseManifest(f, data)
			m.Containers = append(m.Containers, fm.Containers...)
			m.Networks = append(m.Networks, fm.Networks...)
			m.Links = append(m.Links, fm.Links...)
			errs = append(errs, ferrs...)
		}
	}
	if len(errs) > 0 {
		return m, errs
	}
	return m, nil
}

// expand turns one -f argument into the files it names.
func expand(src string) ([]string, error) {
	if src == "-" {
		return []string{"-"}, nil
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{src}, nil
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, filepath.Join(src, e.Name()))
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("folder holds no *.yaml or *.yml file")
	}
	return files, nil
}

// yamlLine is compiled on first use, not at package init (see
// namespacedSysctls).
var yamlLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) })

// Parse decodes the container documents of one file's content (see
// ParseManifest).
func Parse(file string, data []byte) ([]*Container, Errors) {
	m, errs := ParseManifest(file, data)
	return m.Containers, errs
}

// ParseManifest decodes the documents of one file's content, of every
// kind. file names the file in errors and in each document's Source.
func ParseManifest(file string, data []byte) (*Manifest, Errors) {
	out := &Manifest{}
	var errs Errors
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for doc := 0; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			e := &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
			if m := yamlLine().FindStringSubmatch(err.Error()); m != nil {
				e.Line, _ = strconv.Atoi(m[1])
				e.Col = 1
				e.Msg = m[2]
			}
			errs = append(errs, e)
			break // the decoder cannot resynchronise after a syntax error
		}
		root := &n
		if root.Kind == yaml.DocumentNode {
			if len(root.Content) == 0 {
				continue
			}
			root = root.Content[0]
		}
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue // an empty document, e.g. after a trailing ---
		}
		src := Source{File: file, Doc: doc, Line: root.Line, pos: map[string]Pos{}}
		d := &decoder{file: file, doc: doc, pos: src.pos}
		if root.Kind != yaml.MappingNode {
			d.errorf(root, "", "expected a mapping with apiVersion, kind, metadata and spec, got %s", describe(root))
			errs = append(errs, d.errs...)
			continue
		}
		kind, ok := d.checkKind(root)
		if !ok {
			errs = append(errs, d.errs...)
			continue
		}
		var v any
		switch kind {
		case KindNetwork:
			n := &NetworkDoc{Source: src}
			out.Networks = append(out.Networks, n)
			v = n
		case KindLink:
			l := &LinkDoc{Source: src}
			out.Links = append(out.Links, l)
			v = l
		default:
			c := &Container{Source: src}
			out.Containers = append(out.Containers, c)
			v = c
		}
		d.decode(root, reflect.ValueOf(v).Elem(), "")
		errs = append(errs, d.errs...)
	}
	return out, errs
}

// kinds are the document kinds hutch reads.
var kinds = []string{KindContainer, KindNetwork, KindLink}

type decoder struct {
	file string
	doc  int
	pos  map[string]Pos
	errs Errors
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Col: n.Column, Path: path, Msg: fmt.Sprintf(format, args...), doc: d.doc})
}

// checkKind reads apiVersion and kind before the rest, so that a document of
// another kind is reported as such rather than as a pile of unknown fields.
func (d *decoder) checkKind(root *yaml.Node) (string, bool) {
	var apiVersion, kind *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "apiVersion":
			apiVersion = root.Content[i+1]
		case "kind":
			kind = root.Content[i+1]
		}
	}
	ok := true
	if apiVersion == nil {
		d.errorf(root, "apiVersion", "missing (expected %q)", APIVersion)
		ok = false
	} else if apiVersion.Value != APIVersion {
		d.errorf(apiVersion, "apiVersion", "unknown apiVersion %q (expected %q)", apiVersion.Value, APIVersion)
		ok = false
	}
	expected := strings.Join(kinds[:len(kinds)-1], ", ") + " or " + kinds[len(kinds)-1]
	if kind == nil {
		d.errorf(root, "kind", "missing (expected %s)", expected)
		return "", false
	}
	if !slices.Contains(kinds, kind.Value) {
		d.errorf(kind, "kind", "unknown kind %q (expected %s)", kind.Value, expected)
		return "", false
	}
	return kind.Value, ok
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.pos[path] = Pos{Line: n.Line, Col: n.Column}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		d.decode(n, e.Elem(), path)
		v.Set(e)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!bool" {
			d.errorf(n, path, "expected a string, got %s", describe(n))
			return
		}
		// Numbers are kept as written: "0644" stays octal, 1073741824 is a
		// quantity.
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.errorf(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(n.Value == "true" || n.Value == "True" || n.Value == "TRUE")
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := d.integer(n)
		if err == nil {
			if v.OverflowInt(i) {
				err = fmt.Errorf("out of range")
			} else {
				v.SetInt(i)
			}
		}
		if err != nil {
			d.errorf(n, path, "expected an integer, got %s", describe(n))
		}
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		i, err := d.integer(n)
		if err == nil && i < 0 {
			err = fmt.Errorf("negative")
		}
		if err == nil && v.OverflowUint(uint64(i)) {
			err = fmt.Errorf("out of range")
		}
		if err != nil {
			d.errorf(n, path, "expected a non-negative integer, got %s", describe(n))
			return
		}
		v.SetUint(uint64(i))
	default:
		panic("spec: no decoder for " + v.Type().String())
	}
}

func (d *decoder) integer(n *yaml.Node) (int64, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return 0, fmt.Errorf("not an integer")
	}
	var i int64
	if err := n.Decode(&i); err != nil {
		return 0, err
	}
	return i, nil
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	fields := yamlFields(v.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name := k.Value
		fpath := join(path, name)
		if first, dup := seen[name]; dup {
			d.errorf(k, fpath, "duplicate key %q (first at line %d)", name, first.Line)
			continue
		}
		seen[name] = k
		idx, ok := fields[name]
		if !ok {
			hint := suggest(name, fieldNames(fields))
			d.errorf(k, fpath, "unknown field %q%s", name, hint)
			// The field it was likely meant for is then missing: that
			// is the same mistake, not a second one.
			if meant, ok := strings.CutPrefix(hint, ` (did you mean "`); ok {
				d.errs[len(d.errs)-1].covers = join(path, strings.TrimSuffix(meant, `"?)`))
			}
			continue
		}
		d.decode(val, v.Field(idx), fpath)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kpath := path + "." + k.Value
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "expected a string key, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, kpath, "duplicate key %q (first at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, e, kpath)
		m.SetMapIndex(reflect.ValueOf(k.Value), e)
	}
	v.Set(m)
}

// yamlFields maps the YAML key of each field of a struct type to its index.
func yamlFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		name := YAMLName(t.Field(i))
		if name != "" {
			out[name] = i
		}
	}
	return out
}

// YAMLName is the YAML key of a struct field, "" for fields YAML never sees.
func YAMLName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func fieldNames(fields map[string]int) []string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// describe names what a node holds, for "expected X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case "!!null":
			return "null"
		default:
			return n.Value
		}
	}
	return "an unknown node"
}

// suggest returns ` (did you mean "x"?)` for the known name closest to name,
// when one is close enough to be a likely misspelling.
func suggest(name string, known []string) string {
	best, bestD := "", 1<<30
	for _, k := range known {
		if d := distance(strings.ToLower(name), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" || bestD > 2+len(name)/4 {
		if len(known) > 0 {
			return fmt.Sprintf(" (expected one of: %s)", strings.Join(known, ", "))
		}
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Damerau-Levenshtein (optimal string alignment) distance.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
