package spec

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/go-playground/validator/v10"
)

// Validate checks every container of the manifest, as the user wrote it
// (before Defaults, so every error points at what is in the file), and
// returns every problem found at once as Errors, or nil. Field rules come
// from the `validate` tags of the types (go-playground/validator with the
// custom rules of rules.go); rules that span fields or documents are the
// small named checks of checks.go.
func Validate(m *Manifest) error {
	if m == nil {
		return nil
	}
	var errs Errors
	v := validatorInstance()
	var docs []document
	for _, c := range m.Containers {
		docs = append(docs, c)
	}
	for _, n := range m.Networks {
		docs = append(docs, n)
	}
	for _, l := range m.Links {
		docs = append(docs, l)
	}
	for _, c := range docs {
		err := v.Struct(c)
		if err == nil {
			continue
		}
		ves, ok := err.(validator.ValidationErrors)
		if !ok {
			errs = append(errs, c.errorAt("", err.Error()))
			continue
		}
		for _, fe := range ves {
			errs = append(errs, fieldError(c, fe))
		}
	}
	errs = append(errs, crossChecks(m)...)
	if len(errs) == 0 {
		return nil
	}
	errs.Sort()
	return errs
}

// LoadAndValidate loads the sources as Load does and validates every
// document that decoded, and returns the errors of both at once. A field
// that could not be decoded is reported once: validation errors at or below
// the path of a load error of the same document are dropped (a list that
// was a string is not also "missing").
func LoadAndValidate(sources []string, stdin io.Reader) (*Manifest, error) {
	m, err := Load(sources, stdin)
	var loadErrs Errors
	if err != nil && !errors.As(err, &loadErrs) {
		return m, err
	}
	return m, validateLoaded(m, loadErrs)
}

// validateLoaded validates what loaded and joins its errors to the load
// errors, dropping those a load error already covers.
func validateLoaded(m *Manifest, loadErrs Errors) error {
	all := append(Errors(nil), loadErrs...)
	var verrs Errors
	if err := Validate(m); err != nil && !errors.As(err, &verrs) {
		return err
	}
	for _, v := range verrs {
		if !coveredBy(v, loadErrs) {
			all = append(all, v)
		}
	}
	if len(all) == 0 {
		return nil
	}
	all.Sort()
	return all
}

// coveredBy reports whether a load error of the same document is at v's
// path or one of its ancestors.
func coveredBy(v *Error, loadErrs Errors) bool {
	for _, l := range loadErrs {
		if l.File != v.File || l.doc != v.doc {
			continue
		}
		if l.Path == "" || under(v.Path, l.Path) || (l.covers != "" && under(v.Path, l.covers)) {
			return true
		}
	}
	return false
}

// under reports whether path is p or below it.
func under(path, p string) bool {
	return path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[")
}

var (
	validateOnce sync.Once
	validateInst *validator.Validate
)

// validatorInstance builds the validator once: it caches struct metadata.
func validatorInstance() *validator.Validate {
	validateOnce.Do(func() {
		v := validator.New()
		v.RegisterTagNameFunc(func(f reflect.StructField) string {
			if n := YAMLName(f); n != "" {
				return n
			}
			return "-"
		})
		for tag, r := range rules {
			check := r.check
			err := v.RegisterValidation(tag, func(fl validator.FieldLevel) bool {
				if fl.Field().Kind() != reflect.String {
					return false
				}
				what, _ := check(fl.Field().String())
				return what == ""
			})
			if err != nil {
				panic("spec: register rule " + tag + ": " + err.Error())
			}
		}
		validateInst = v
	})
	return validateInst
}

// errorAt is an error at a field path of the container's document.
func (c *Container) errorAt(path, msg string) *Error { return c.Source.errorAt(path, msg) }
func (c *Container) written(path string) bool        { return c.Source.written(path) }

func (s Source) errorAt(path, msg string) *Error {
	p := s.Pos(path)
	return &Error{File: s.File, Line: p.Line, Col: p.Col, Path: path, Msg: msg, doc: s.Doc}
}

// written reports whether the document holds a value at path. A
// document built in Go rather than loaded has no positions: all its
// fields count as written.
func (s Source) written(path string) bool {
	if s.pos == nil {
		return true
	}
	_, ok := s.pos[path]
	return ok
}

// document is a decoded document of any kind, for errors at its fields.
type document interface {
	errorAt(path, msg string) *Error
	written(path string) bool
}

// fieldError turns one validator error into an Error at the field's place.
func fieldError(c document, fe validator.FieldError) *Error {
	path := yamlPath(fe.Namespace())
	what, expected := describeFieldError(fe, structField(fe.StructNamespace()))
	if !c.written(path) {
		what = "missing"
	}
	msg := what
	if expected != "" {
		msg += " (expected " + expected + ")"
	}
	return c.errorAt(path, msg)
}

// yamlPath turns the validator's namespace ("Container.spec.metadata.
// labels[app]") into the field path Source.Pos knows
// ("metadata.labels.app"): the type name goes, map keys become fields.
func yamlPath(ns string) string {
	_, ns, _ = strings.Cut(ns, ".")
	var b strings.Builder
	for i := 0; i < len(ns); i++ {
		if ns[i] != '[' {
			b.WriteByte(ns[i])
			continue
		}
		end := strings.IndexByte(ns[i:], ']')
		if end < 0 {
			b.WriteString(ns[i:])
			break
		}
		key := ns[i+1 : i+end]
		if _, err := strconv.Atoi(key); err == nil {
			b.WriteString(ns[i : i+end+1])
		} else {
			b.WriteString("." + key)
		}
		i += end
	}
	return b.String()
}

// structField finds the struct field a validator struct namespace
// ("Container.Spec.Network.Interfaces[0].Name") names, for its tags.
func structField(ns string) reflect.StructField {
	t := reflect.TypeOf(Container{})
	parts := strings.Split(ns, ".")
	var f reflect.StructField
	for _, p := range parts[1:] {
		if i := strings.IndexByte(p, '['); i >= 0 {
			p = p[:i]
		}
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return f
		}
		sf, ok := t.FieldByName(p)
		if !ok {
			return f
		}
		f, t = sf, sf.Type
	}
	return f
}

// tagParams maps each tag of a validate tag string to its parameter
// ("min=1,max=10" gives min:1, max:10).
func tagParams(tag string) map[string]string {
	out := map[string]string{}
	for _, t := range strings.Split(tag, ",") {
		k, v, _ := strings.Cut(t, "=")
		out[k] = v
	}
	return out
}

// describeFieldError says what is wrong and what was expected, for the tags
// the types use.
func describeFieldError(fe validator.FieldError, f reflect.StructField) (what, expected string) {
	val := fe.Value()
	tags := tagParams(f.Tag.Get("validate"))
	// Tags after dive apply to the elements; a rule named by the failing
	// tag is described by the rule itself.
	if r, ok := rules[fe.Tag()]; ok {
		s, _ := val.(string)
		return r.check(s)
	}
	switch fe.Tag() {
	case "required":
		// The expectation comes from the other rules of the field.
		for t := range tags {
			if r, ok := rules[t]; ok {
				return "missing", r.expect
			}
		}
		if fe.Kind() == reflect.Slice {
			return "missing", "a list with at least one item"
		}
		return "missing", "a value"
	case "eq":
		return fmt.Sprintf("%q is not allowed", fmt.Sprint(val)), strconv.Quote(fe.Param())
	case "oneof":
		options := strings.Fields(fe.Param())
		s := fmt.Sprint(val)
		return fmt.Sprintf("unknown value %q", s), suggestOne(s, options)
	case "min", "max":
		switch fe.Kind() {
		case reflect.Slice, reflect.Map:
			if fe.Tag() == "min" {
				return "empty", "at least " + plural(fe.Param(), "item")
			}
			return "too many items", "at most " + fe.Param()
		case reflect.String:
			return fmt.Sprintf("%q is %d characters", val, len(fmt.Sprint(val))), "at most " + fe.Param()
		}
		return fmt.Sprintf("%v is out of range", val), rangeOf(tags)
	case "len":
		if fe.Kind() == reflect.Slice {
			return plural(strconv.Itoa(reflect.ValueOf(val).Len()), "item"), "exactly " + fe.Param()
		}
	case "cidr":
		return fmt.Sprintf("%q is not a prefix", val), "an address prefix with its length such as 10.89.0.0/24 or fd89::/64"
	case "ip":
		return fmt.Sprintf("%q is not an IP address", val), "IPv4 such as 172.16.0.1 or IPv6 such as fd00::1"
	case "mac":
		return fmt.Sprintf("%q is not a MAC address", val), "six hex bytes such as 02:42:ac:10:00:02"
	}
	return fmt.Sprintf("%v fails rule %s", val, fe.Tag()), fe.ActualTag()
}

// rangeOf describes the min and max of a field's tags: "1-65535",
// "at least 1", "at most 100".
func rangeOf(tags map[string]string) string {
	lo, hasLo := tags["min"]
	hi, hasHi := tags["max"]
	switch {
	case hasLo && hasHi:
		return lo + "-" + hi
	case hasLo:
		return "at least " + lo
	case hasHi:
		return "at most " + hi
	}
	return "a value in range"
}

func plural(n, word string) string {
	if n == "1" {
		return n + " " + word
	}
	return n + " " + word + "s"
}

// suggestOne says which valid value was likely meant, after the list of
// valid values.
func suggestOne(s string, valid []string) string {
	list := "one of: " + strings.Join(valid, ", ")
	if hint := suggest(s, valid); strings.HasPrefix(hint, " (did you mean") {
		return list + "; " + strings.TrimSuffix(strings.TrimPrefix(hint, " ("), ")")
	}
	return list
}
