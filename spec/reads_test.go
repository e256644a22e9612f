package spec

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestReadsOnlyManifests: the only host access in spec's code is reading
// the manifests it is given (os.ReadFile, os.ReadDir, os.Stat, os.Stdin).
func TestReadsOnlyManifests(t *testing.T) {
	allowed := map[string]bool{"ReadFile": true, "ReadDir": true, "Stat": true, "Stdin": true}
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	var used []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "os" {
				used = append(used, sel.Sel.Name)
				if !allowed[sel.Sel.Name] {
					t.Errorf("%s: spec uses os.%s", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
	sort.Strings(used)
	if len(used) == 0 {
		t.Error("found no use of package os at all: the check looks at nothing")
	}
}
