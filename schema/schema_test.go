package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"hutch/spec"
)

var update = flag.Bool("update", false, "regenerate hutch.schema.json from spec's types")

// TestGenerated: hutch.schema.json is what Generate makes of spec's types
// today (`go test ./schema -update` regenerates it).
func TestGenerated(t *testing.T) {
	var srcs [][]byte
	for _, f := range []string{"../spec/types.go", "../spec/network.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	got, err := Generate(srcs...)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("hutch.schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(got, JSON) {
		t.Fatal("hutch.schema.json is out of date with spec/types.go and spec/network.go: run go test ./schema -update")
	}
}

// TestFields walks the Go types and the committed schema side by side:
// every yaml field is a property with a description, and the schema has no
// property the types lack.
func TestFields(t *testing.T) {
	var s map[string]any
	if err := json.Unmarshal(JSON, &s); err != nil {
		t.Fatal(err)
	}
	defs, _ := s["$defs"].(map[string]any)
	resolve := func(node map[string]any) map[string]any {
		for {
			ref, ok := node["$ref"].(string)
			if !ok {
				return node
			}
			name := strings.TrimPrefix(ref, "#/$defs/")
			next, ok := defs[name].(map[string]any)
			if !ok {
				t.Fatalf("dangling $ref %s", ref)
			}
			node = next
		}
	}
	seen := map[reflect.Type]bool{}
	var walk func(rt reflect.Type, node map[string]any, path string)
	walk = func(rt reflect.Type, node map[string]any, path string) {
		for rt.Kind() == reflect.Pointer {
			rt = rt.Elem()
		}
		node = resolve(node)
		switch rt.Kind() {
		case reflect.Slice:
			items, _ := node["items"].(map[string]any)
			if items == nil {
				t.Errorf("%s: schema has no items", path)
				return
			}
			walk(rt.Elem(), items, path+"[]")
			return
		case reflect.Struct:
		default:
			return
		}
		if seen[rt] {
			return
		}
		seen[rt] = true
		props, _ := node["properties"].(map[string]any)
		if node["additionalProperties"] != false {
			t.Errorf("%s: schema allows unknown fields, hutch does not", path)
		}
		want := map[string]bool{}
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			name := spec.YAMLName(f)
			if name == "" {
				continue
			}
			want[name] = true
			p, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("%s.%s: missing from the schema", path, name)
				continue
			}
			if d, _ := p["description"].(string); d == "" {
				t.Errorf("%s.%s: no description (write a doc comment on %s.%s)", path, name, rt.Name(), f.Name)
			}
			walk(f.Type, p, strings.TrimPrefix(path+"."+name, "."))
		}
		for name := range props {
			if !want[name] {
				t.Errorf("%s.%s: in the schema but not a field of spec.%s", path, name, rt.Name())
			}
		}
	}
	for _, doc := range []any{spec.Container{}, spec.NetworkDoc{}, spec.LinkDoc{}} {
		rt := reflect.TypeOf(doc)
		walk(rt, map[string]any{"$ref": "#/$defs/" + rt.Name()}, rt.Name())
	}
	if len(seen) < 20 {
		t.Errorf("walked %d struct types, expected the whole manifest", len(seen))
	}
}

// TestAgreement: the schema accepts every manifest under manifests/ and
// spec/testdata/good; of spec/testdata/bad it rejects exactly those marked
// `# structural` (a mistake of form: unknown field, wrong type, missing
// field, value out of its enum, pattern or range), and accepts the others,
// which only hutch validate sees (names unique across documents, subnets,
// routes...). The Go validator rejects them all (spec's TestBad).
func TestAgreement(t *testing.T) {
	sch := compile(t)
	var good, bad []string
	for _, pat := range []string{"../manifests/*.yaml", "../spec/testdata/good/*.yaml"} {
		m, _ := filepath.Glob(pat)
		good = append(good, m...)
	}
	bad, _ = filepath.Glob("../spec/testdata/bad/*.yaml")
	if len(good) < 9 || len(bad) < 30 {
		t.Fatalf("found %d good and %d bad manifests", len(good), len(bad))
	}
	structural := 0
	for _, f := range good {
		if err := validateFile(sch, f); err != nil {
			t.Errorf("%s: the schema rejects a good manifest: %v", f, err)
		}
	}
	for _, f := range bad {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		isStructural := bytes.Contains(b, []byte("\n# structural\n"))
		err = validateFile(sch, f)
		switch {
		case isStructural:
			structural++
			if err == nil {
				t.Errorf("%s: marked structural, but the schema accepts it", f)
			}
		case err != nil:
			t.Errorf("%s: the schema rejects it but it is not marked # structural: %v", f, err)
		}
	}
	if structural < 20 {
		t.Errorf("only %d bad manifests are structural", structural)
	}
}

func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(JSON))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("hutch.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("hutch.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// validateFile checks every document of a YAML file against the schema, as
// yaml-language-server does. A file that is not YAML an editor could read
// (a duplicate key) counts as rejected.
func validateFile(sch *jsonschema.Schema, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var errs []string
	for i := 0; ; i++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if v == nil {
			continue // an empty document
		}
		j, err := json.Marshal(v)
		if err != nil {
			return err
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
		if err != nil {
			return err
		}
		if err := sch.Validate(inst); err != nil {
			errs = append(errs, strings.ReplaceAll(err.Error(), "\n", " "))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// TestDocs: docs/manifest.md, the users' field reference, names every
// field that holds a value: its full path in backticks (`spec.network.interfaces[].name`), or
// its parent's path and its own name.
func TestDocs(t *testing.T) {
	b, err := os.ReadFile("../docs/manifest.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	has := func(s string) bool { return strings.Contains(doc, "`"+s+"`") }
	var walk func(rt reflect.Type, path string, depth int)
	walk = func(rt reflect.Type, path string, depth int) {
		for rt.Kind() == reflect.Pointer {
			rt = rt.Elem()
		}
		if rt.Kind() == reflect.Slice {
			walk(rt.Elem(), path+"[]", depth)
			return
		}
		if rt.Kind() != reflect.Struct || depth > 10 {
			return
		}
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			name := spec.YAMLName(f)
			if name == "" {
				continue
			}
			p := strings.TrimPrefix(path+"."+name, ".")
			leaf := f.Type
			for leaf.Kind() == reflect.Pointer || leaf.Kind() == reflect.Slice {
				leaf = leaf.Elem()
			}
			if leaf.Kind() != reflect.Struct && !has(p) && !(has(name) && (has(path) || has(path+"[]") || has(strings.TrimSuffix(path, "[]")))) {
				t.Errorf("docs/manifest.md does not describe %s", p)
			}
			walk(f.Type, p, depth+1)
		}
	}
	walk(reflect.TypeOf(spec.Container{}), "", 0)
	// A network's and a link's fields are described in docs/labs.md's
	// reference as well as in docs/manifest.md.
	walk(reflect.TypeOf(spec.NetworkDoc{}), "", 0)
	walk(reflect.TypeOf(spec.LinkDoc{}), "", 0)
	for _, s := range []string{"52428800", "powers of 1024", "Mi"} {
		if !strings.Contains(doc, s) {
			t.Errorf("docs/manifest.md does not say %q about memory units", s)
		}
	}
}
