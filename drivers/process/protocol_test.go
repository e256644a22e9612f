//go:build linux

package process

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestProtocolAgrees: protocol.go and protocol.h, the two halves of the
// contract between the Go and the C of this package, name the same
// constants with the same values (protocol.go's initFdExe is protocol.h's
// HUTCH_INIT_FD_EXE), and no other file spells an environment name.
func TestProtocolAgrees(t *testing.T) {
	goConsts := protocolGo(t, "protocol.go")
	cConsts := protocolH(t, "protocol.h")
	if len(goConsts) < 40 {
		t.Fatalf("protocol.go: %d constants read: the test reads the wrong file", len(goConsts))
	}
	for name, v := range goConsts {
		c, ok := cConsts[name]
		switch {
		case !ok:
			t.Errorf("protocol.h has no %s (%s in protocol.go)", name, v)
		case c.Kind() != v.Kind() || !constant.Compare(c, token.EQL, v):
			t.Errorf("%s is %s in protocol.h, %s in protocol.go", name, c, v)
		}
	}
	for name, c := range cConsts {
		if _, ok := goConsts[name]; !ok {
			t.Errorf("protocol.go has no constant for %s (%s in protocol.h)", name, c)
		}
	}

	// Every other file names the environment through these constants:
	// one spelled out elsewhere could drift from them.
	files, err := filepath.Glob("*.[cgh]*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f == "protocol.go" || f == "protocol.h" || strings.HasSuffix(f, "_test.go") ||
			!slices.Contains([]string{".go", ".c", ".h"}, filepath.Ext(f)) {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.Index(string(b), `"_HUTCH_`); i >= 0 {
			line := strings.Count(string(b[:i]), "\n") + 1
			t.Errorf("%s:%d spells an environment name: use protocol.go's or protocol.h's constant", f, line)
		}
	}
}

// protocolGo reads the package-level constants of a Go file, keyed by
// their C names (cName), with their values as the type checker computes
// them.
func protocolGo(t *testing.T, path string) map[string]constant.Value {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Imports) > 0 {
		t.Fatalf("%s imports packages: the contract is constants only", path)
	}
	pkg, err := new(types.Config).Check("process", fset, []*ast.File{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]constant.Value{}
	for _, name := range pkg.Scope().Names() {
		c, ok := pkg.Scope().Lookup(name).(*types.Const)
		if !ok {
			t.Errorf("%s: %s is not a constant: the contract is constants only", path, name)
			continue
		}
		out[cName(name)] = c.Val()
	}
	return out
}

// cDefine is a line of protocol.h: #define HUTCH_NAME VALUE, and maybe a
// comment.
var cDefine = regexp.MustCompile(`^#define\s+(\w+)(?:\s+("(?:[^"\\]|\\.)*"|[0-9]+))?\s*(?://.*)?$`)

// protocolH reads the #define lines of a C header: each a string or a
// decimal integer (the include guard, HUTCH_PROTOCOL_H, has none).
func protocolH(t *testing.T, path string) map[string]constant.Value {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]constant.Value{}
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if !strings.HasPrefix(line, "#define") {
			continue
		}
		name, v, err := parseDefine(line)
		if err != nil {
			t.Errorf("%s:%d: %v", path, n, err)
			continue
		}
		if v == nil {
			continue // the include guard
		}
		if _, dup := out[name]; dup {
			t.Errorf("%s:%d: %s defined twice", path, n, name)
		}
		out[name] = v
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// cName is the C name of a Go constant of protocol.go: HUTCH_, then its
// words in capitals joined by underscores, a run of capitals being one
// word (keyOOMFile is HUTCH_KEY_OOM_FILE).
func cName(goName string) string {
	r := []rune(goName)
	var b strings.Builder
	b.WriteString("HUTCH_")
	for i, c := range r {
		if i > 0 && unicode.IsUpper(c) && (!unicode.IsUpper(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(c))
	}
	return b.String()
}

// parseDefine reads one #define line: its name and value, nil for the
// include guard.
func parseDefine(line string) (string, constant.Value, error) {
	m := cDefine.FindStringSubmatch(line)
	switch {
	case m == nil:
		return "", nil, fmt.Errorf("%q: not a #define of a string or a decimal integer", line)
	case m[2] == "" && m[1] == "HUTCH_PROTOCOL_H":
		return m[1], nil, nil
	case m[2] == "":
		return "", nil, fmt.Errorf("%s has no value", m[1])
	case !strings.HasPrefix(m[1], "HUTCH_"):
		return "", nil, fmt.Errorf("%s: every name starts with HUTCH_", m[1])
	case m[2][0] == '"':
		v, err := strconv.Unquote(m[2])
		return m[1], constant.MakeString(v), err
	}
	v, err := strconv.ParseInt(m[2], 10, 64)
	return m[1], constant.MakeInt64(v), err
}

func TestCName(t *testing.T) {
	for in, want := range map[string]string{
		"envStage": "HUTCH_ENV_STAGE", "keyOOMFile": "HUTCH_KEY_OOM_FILE", "keyUIDMap": "HUTCH_KEY_UID_MAP",
		"initFdExe": "HUTCH_INIT_FD_EXE", "keyHealthStartIntervalNs": "HUTCH_KEY_HEALTH_START_INTERVAL_NS",
	} {
		if got := cName(in); got != want {
			t.Errorf("cName(%q) = %q, want %q", in, got, want)
		}
	}
}
