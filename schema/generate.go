package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strconv"
	"strings"

	"hutch/spec"
)

// Generate builds the JSON Schema of the manifest from spec's Go types: the
// yaml tags give the property names, the validate tags the constraints and
// sources (the text of spec/types.go and spec/network.go) the
// descriptions, from the doc comments of the types and fields. A document
// is checked against the type its kind names.
func Generate(sources ...[]byte) ([]byte, error) {
	docs := map[string]string{}
	for _, src := range sources {
		d, err := docComments(src)
		if err != nil {
			return nil, err
		}
		for k, v := range d {
			docs[k] = v
		}
	}
	g := &generator{docs: docs, defs: map[string]any{}}
	byKind := func(kind string, t reflect.Type) map[string]any {
		return map[string]any{
			"if":   map[string]any{"properties": map[string]any{"kind": map[string]any{"const": kind}}, "required": []string{"kind"}},
			"then": g.ref(t),
		}
	}
	others := []string{spec.KindNetwork, spec.KindLink}
	schema := map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"title":       "hutch manifest (" + spec.APIVersion + ")",
		"description": "One document of a hutch manifest: kind Container, Network or Link. A file may hold several documents separated by ---; each is validated on its own. Generated from hutch's spec package by `go test ./schema -update`; hutch validate checks more than this schema can (unique names and addresses across documents, subnets, routes, ranges, networks and containers that links and interfaces name).",
		"$defs":       g.defs,
		"allOf": []any{
			byKind(spec.KindNetwork, reflect.TypeOf(spec.NetworkDoc{})),
			byKind(spec.KindLink, reflect.TypeOf(spec.LinkDoc{})),
			map[string]any{
				"if":   map[string]any{"properties": map[string]any{"kind": map[string]any{"enum": others}}, "required": []string{"kind"}},
				"else": g.ref(reflect.TypeOf(spec.Container{})),
			},
		},
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(schema); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type generator struct {
	docs map[string]string // "Type" and "Type.Field" to doc comment
	defs map[string]any
}

// ref returns a $ref to the definition of a struct type, adding it once.
func (g *generator) ref(t reflect.Type) map[string]any {
	name := t.Name()
	if _, ok := g.defs[name]; !ok {
		g.defs[name] = nil // reserve: types may refer to themselves
		g.defs[name] = g.object(t)
	}
	return map[string]any{"$ref": "#/$defs/" + name}
}

// object is the schema of a struct type: its yaml fields, nothing else.
func (g *generator) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := spec.YAMLName(f)
		if name == "" {
			continue
		}
		p := g.field(f)
		if d := g.docs[t.Name()+"."+f.Name]; d != "" {
			p["description"] = d
		}
		props[name] = p
		if isRequired(f) || conditions[f.Type.Name()] != nil {
			// A type with conditions needs something of its own
			// (a container's spec: its process's args, or an image).
			required = append(required, name)
		}
	}
	o := map[string]any{
		"type":                 "object",
		"properties":           props,
		"additionalProperties": false,
	}
	if d := g.docs[t.Name()]; d != "" {
		o["description"] = d
	}
	if len(required) > 0 {
		o["required"] = required
	}
	for k, v := range conditions[t.Name()] {
		o[k] = v
	}
	return o
}

// conditions are rules between the fields of a type, as if/then/else: a
// container's process needs args unless its rootfs names an image (whose
// entrypoint and cmd then run; spec's checkArgs).
var conditions = map[string]map[string]any{
	"ContainerSpec": {
		"if": map[string]any{"properties": map[string]any{"rootfs": map[string]any{"required": []string{"image"}}}, "required": []string{"rootfs"}},
		"else": map[string]any{"required": []string{"process"}, "properties": map[string]any{
			"process": map[string]any{"required": []string{"args"}, "properties": map[string]any{"args": map[string]any{"minItems": 1}}}}},
	},
}

// isRequired: Validate reports the field missing when it is absent: its
// tag says required, its zero value breaks a min of at least 1, or it is a
// struct with a required field.
func isRequired(f reflect.StructField) bool {
	tags := strings.Split(f.Tag.Get("validate"), ",")
	if tags[0] == "required" {
		return true
	}
	if tags[0] == "omitempty" || tags[0] == "dive" {
		return false
	}
	for _, t := range tags {
		if v, ok := strings.CutPrefix(t, "min="); ok && v != "0" {
			return true
		}
	}
	if f.Type.Kind() == reflect.Struct {
		for i := 0; i < f.Type.NumField(); i++ {
			if spec.YAMLName(f.Type.Field(i)) != "" && isRequired(f.Type.Field(i)) {
				return true
			}
		}
	}
	return false
}

// field is the schema of one field, from its type and validate tag. Tags
// before "dive" constrain a list or map, tags after it its items.
func (g *generator) field(f reflect.StructField) map[string]any {
	tag := f.Tag.Get("validate")
	outer, inner, _ := strings.Cut(tag, "dive")
	return g.value(f.Type, splitTags(outer), splitTags(inner))
}

func splitTags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" && t != "omitempty" {
			out = append(out, t)
		}
	}
	return out
}

func (g *generator) value(t reflect.Type, tags, inner []string) map[string]any {
	switch t.Kind() {
	case reflect.Pointer:
		return g.value(t.Elem(), tags, inner)
	case reflect.Struct:
		return g.ref(t)
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		s := map[string]any{"type": "integer"}
		numeric(s, tags)
		return s
	case reflect.Uint, reflect.Uint32, reflect.Uint64:
		s := map[string]any{"type": "integer", "minimum": 0}
		if t.Kind() == reflect.Uint32 {
			s["maximum"] = uint64(1<<32 - 1)
		}
		numeric(s, tags)
		return s
	case reflect.String:
		return stringSchema(tags)
	case reflect.Slice:
		s := map[string]any{"type": "array", "items": g.value(t.Elem(), inner, nil)}
		for _, tg := range tags {
			if v, ok := strings.CutPrefix(tg, "min="); ok {
				s["minItems"] = atoi(v)
			}
			if v, ok := strings.CutPrefix(tg, "max="); ok {
				s["maxItems"] = atoi(v)
			}
			if v, ok := strings.CutPrefix(tg, "len="); ok {
				s["minItems"], s["maxItems"] = atoi(v), atoi(v)
			}
		}
		return s
	case reflect.Map:
		// dive,keys,K,endkeys,V: keys and values have their own rules.
		var keyTags, valTags []string
		if len(inner) > 0 && inner[0] == "keys" {
			for i, tg := range inner[1:] {
				if tg == "endkeys" {
					valTags = inner[i+2:]
					break
				}
				keyTags = append(keyTags, tg)
			}
		} else {
			valTags = inner
		}
		s := map[string]any{"type": "object", "additionalProperties": g.value(t.Elem(), valTags, nil)}
		if len(keyTags) > 0 {
			s["propertyNames"] = stringSchema(keyTags)
		}
		return s
	}
	panic("schema: no schema for " + t.String())
}

func numeric(s map[string]any, tags []string) {
	for _, tg := range tags {
		if v, ok := strings.CutPrefix(tg, "min="); ok {
			s["minimum"] = atoi(v)
		}
		if v, ok := strings.CutPrefix(tg, "max="); ok {
			s["maximum"] = atoi(v)
		}
	}
}

func atoi(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic("schema: tag parameter " + s + " is not a number")
	}
	return n
}

// stringSchema turns the rules of a string field into patterns and enums.
// Patterns check the form only; ranges, subnets and the like are left to
// hutch validate. hutch reads a number where a string is expected as the
// number's text (memory: 1073741824, args: [sleep, 10]), so every string
// field whose rules can hold a number accepts one too.
func stringSchema(tags []string) map[string]any {
	s := map[string]any{"type": []string{"string", "number"}}
	onlyString := func() { s["type"] = "string" }
	for _, tg := range tags {
		name, param, _ := strings.Cut(tg, "=")
		switch name {
		case "required":
			s["minLength"] = 1
		case "max":
			s["maxLength"] = atoi(param)
		case "eq":
			onlyString()
			s["const"] = param
		case "oneof":
			onlyString()
			s["enum"] = strings.Fields(param)
		case "ip":
			onlyString()
			s["pattern"] = `^[0-9A-Fa-f:.]+$`
		case "mac":
			onlyString()
			s["pattern"] = `^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$`
		case "hostname":
			// A number is a hostname too (hostname: 123 is "123").
			s["pattern"] = `^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$`
		default:
			rs, ok := ruleSchemas[name]
			if !ok {
				panic("schema: no schema for validate rule " + name)
			}
			for k, v := range rs.s {
				s[k] = v
			}
			if !rs.number {
				onlyString()
			}
		}
	}
	return s
}

// ruleSchema is the schema form of one of spec's custom rules; number
// says whether some numbers pass the rule (a name may be 123, a
// capability never is).
type ruleSchema struct {
	number bool
	s      map[string]any
}

// memoryPattern is what spec.ParseMemory reads: bytes, or a number with K,
// M, G or T, optionally followed by i and/or B, any case.
const memoryPattern = `[0-9]+([KkMmGgTt]([Ii]?[Bb]|[Ii])?|[Bb])?`

// ruleSchemas are the schema forms of spec's custom rules (spec/rules.go).
var ruleSchemas = map[string]ruleSchema{
	"dnslabel":   {true, map[string]any{"pattern": `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, "maxLength": 63}},
	"labelkey":   {false, map[string]any{"pattern": `^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`}},
	"labelvalue": {true, map[string]any{"pattern": `^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`}},
	"binary":     {true, map[string]any{"pattern": `^(/.*|[^/\s]+)$`}},
	"abspath":    {false, map[string]any{"pattern": `^/`}},
	"filemode":   {true, map[string]any{"pattern": `^(0o)?[0-7]{1,4}$`, "minimum": 0}},
	"envvar":     {false, map[string]any{"pattern": `^[^=\s]+=`}},
	"uidgid":     {true, map[string]any{"pattern": `^[0-9]+(:[0-9]+)?$`, "minimum": 0}},
	"rlimit": {false, map[string]any{"pattern": "^(" + anyCase("RLIMIT_") + ")?(" +
		anyCaseAlt(trimAll(spec.RlimitNames, "RLIMIT_")) + ")$"}},
	"signal": {true, map[string]any{"pattern": "^([0-9]+|(" + anyCase("SIG") + ")?(" +
		anyCaseAlt(trimAll(spec.SignalNames, "SIG")) + "))$", "minimum": 1, "maximum": 64}},
	"duration0":  {true, map[string]any{"pattern": `^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`}},
	"httppath":   {false, map[string]any{"pattern": `^/[!-~]*$`, "maxLength": 1024}},
	"duration":   {false, map[string]any{"pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`}},
	"netnsname":  {true, map[string]any{"pattern": `^[A-Za-z0-9_.-]{1,64}$`}},
	"ifname":     {true, map[string]any{"pattern": `^[^/:\s]+$`, "minLength": 1, "maxLength": spec.IFNAMSIZ - 1}},
	"cidr_addr":  {false, map[string]any{"pattern": `^[0-9A-Fa-f:.]+/[0-9]{1,3}$`}},
	"cidr":       {false, map[string]any{"pattern": `^[0-9A-Fa-f:.]+/[0-9]{1,3}$`}},
	"sysctl":     {true, map[string]any{"pattern": `^net\.[A-Za-z0-9_.-]+$`}},
	"routedst":   {false, map[string]any{"pattern": `^(default|[0-9A-Fa-f:.]+/[0-9]{1,3})$`}},
	"memory":     {true, map[string]any{"pattern": "^" + memoryPattern + "$", "minimum": 0}},
	"memoryswap": {true, map[string]any{"pattern": "^(-1|" + memoryPattern + ")$", "minimum": -1}},
	"size":       {true, map[string]any{"pattern": "^" + memoryPattern + "$", "minimum": 1}},
	"cpu":        {true, map[string]any{"pattern": `^([0-9]+(\.[0-9]*)?|\.[0-9]+|[0-9]+m)$`, "exclusiveMinimum": 0}},
	"imageref":   {false, map[string]any{"pattern": `^(oci-layout|docker-archive):.`}},
	"cpulist":    {true, map[string]any{"pattern": `^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`, "minimum": 0}},
	"seccomp": {false, map[string]any{"anyOf": []any{
		map[string]any{"enum": []string{"default", "unconfined"}},
		map[string]any{"pattern": "^/"},
	}}},
	"capability": {false, map[string]any{"pattern": "^(" + anyCase("CAP_") + ")?(" +
		anyCaseAlt(trimAll(spec.CapabilityNames, "CAP_")) + ")$"}},
	"capdrop": {false, map[string]any{"pattern": "^(" + anyCase("ALL") + "|(" + anyCase("CAP_") + ")?(" +
		anyCaseAlt(trimAll(spec.CapabilityNames, "CAP_")) + "))$"}},
}

// anyCase is a pattern matching s in any case: "ab_" gives "[Aa][Bb]_".
// JSON Schema's patterns (ECMA 262) have no (?i) flag.
func anyCase(s string) string {
	var b strings.Builder
	for _, r := range s {
		up, lo := strings.ToUpper(string(r)), strings.ToLower(string(r))
		if up == lo {
			b.WriteRune(r)
		} else {
			b.WriteString("[" + up + lo + "]")
		}
	}
	return b.String()
}

func anyCaseAlt(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = anyCase(n)
	}
	return strings.Join(out, "|")
}

func trimAll(names []string, prefix string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.TrimPrefix(n, prefix)
	}
	return out
}

// docComments reads the doc comments of the types and fields of a Go file.
func docComments(src []byte) (map[string]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "types.go", src, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("parse types: %w", err)
	}
	docs := map[string]string{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, sp := range gd.Specs {
			ts := sp.(*ast.TypeSpec)
			doc := ts.Doc
			if doc == nil {
				doc = gd.Doc
			}
			docs[ts.Name.Name] = text(doc)
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			for _, fl := range st.Fields.List {
				c := fl.Doc
				if c == nil {
					c = fl.Comment
				}
				for _, n := range fl.Names {
					docs[ts.Name.Name+"."+n.Name] = text(c)
				}
			}
		}
	}
	return docs, nil
}

func text(c *ast.CommentGroup) string {
	if c == nil {
		return ""
	}
	return strings.Join(strings.Fields(c.Text()), " ")
}
