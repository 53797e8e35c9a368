package torch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestNoFatalGotchCalls keeps every gotch call that can end the process
// (log.Fatal on a libtorch error) inside this package, where each has an
// error-returning replacement. The fatal set is computed from gotch's own
// source: the functions and methods of its ts package that call log.Fatal*,
// directly or through another such function of ts. Any call of one of those
// names in a non-test file outside internal/torch that imports gotch's ts is
// reported with its position.
func TestNoFatalGotchCalls(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/sugarme/gotch").Output()
	if err != nil {
		t.Fatalf("go list gotch: %v", err)
	}
	fatal := fatalFuncs(t, filepath.Join(strings.TrimSpace(string(out)), "ts"))
	for _, known := range []string{"Tensor.MustSize", "Tensor.Float64Values", "Tensor.Copy_", "Tensor.Numel", "Scalar.MustDrop", "MustOfSlice"} {
		if !fatal[known] {
			t.Fatalf("the fatal-set analysis misses %s (found %d)", known, len(fatal))
		}
	}

	// Type-check every dira package (test files excluded) against its
	// dependencies' export data, so each call resolves to the function it
	// really calls: a method named like a gotch one is not confused with it.
	listing, err := exec.Command("go", "list", "-export", "-deps", "-json=ImportPath,Dir,GoFiles,CgoFiles,Export,Standard", "dira/...").Output()
	if err != nil {
		t.Fatalf("go list -export: %v", err)
	}
	type pkg struct {
		ImportPath, Dir, Export string
		GoFiles, CgoFiles       []string
		Standard                bool
	}
	exports := map[string]string{}
	var own []pkg
	dec := json.NewDecoder(bytes.NewReader(listing))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
		if (p.ImportPath == "dira" || strings.HasPrefix(p.ImportPath, "dira/")) && !strings.HasPrefix(p.ImportPath, "dira/internal/torch") {
			own = append(own, p)
		}
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	var bad []string
	for _, p := range own {
		var files []*ast.File
		// Cgo files too (dist's c10d shim): go/types checks them with
		// FakeImportC, which accepts C.x without cgo's translation.
		for _, name := range append(append([]string{}, p.GoFiles...), p.CgoFiles...) {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
		conf := types.Config{Importer: imp.(types.ImporterFrom), Error: func(error) {}, FakeImportC: true}
		if _, err := conf.Check(p.ImportPath, fset, files, info); err != nil {
			t.Fatalf("type-check %s: %v", p.ImportPath, err)
		}
		for id, obj := range info.Uses {
			fn, ok := obj.(*types.Func)
			if !ok || fn.Pkg() == nil || fn.Pkg().Path() != "github.com/sugarme/gotch/ts" {
				continue
			}
			key := fn.Name()
			if recv := fn.Type().(*types.Signature).Recv(); recv != nil {
				rt := recv.Type()
				if ptr, ok := rt.(*types.Pointer); ok {
					rt = ptr.Elem()
				}
				key = rt.(*types.Named).Obj().Name() + "." + key
			}
			if fatal[key] {
				bad = append(bad, fset.Position(id.Pos()).String()+": "+key)
			}
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		t.Errorf("%d uses of gotch functions that exit the process on a libtorch error; use internal/torch's helpers:\n%s",
			len(bad), strings.Join(bad, "\n"))
	}
}

// fatalFuncs returns the names of ts functions and methods that reach
// log.Fatal*, through calls inside ts (matched by name: a method value and a
// function of the same name are one entry, which can only over-report).
func fatalFuncs(t *testing.T, dir string) map[string]bool {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]map[string]bool{} // func name -> names it calls
	fatal := map[string]bool{}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, decl := range f.Decls {
				fd, ok := decl.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					continue
				}
				name := fd.Name.Name
				if fd.Recv != nil && len(fd.Recv.List) == 1 {
					rt := fd.Recv.List[0].Type
					if st, ok := rt.(*ast.StarExpr); ok {
						rt = st.X
					}
					if id, ok := rt.(*ast.Ident); ok {
						name = id.Name + "." + name
					}
				}
				if calls[name] == nil {
					calls[name] = map[string]bool{}
				}
				ast.Inspect(fd.Body, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					switch fn := call.Fun.(type) {
					case *ast.SelectorExpr:
						if x, ok := fn.X.(*ast.Ident); ok && x.Name == "log" && strings.HasPrefix(fn.Sel.Name, "Fatal") {
							fatal[name] = true
						}
						// Inside ts, x.M() is (almost always) a Tensor
						// method; the few Scalar ones are matched too.
						calls[name]["Tensor."+fn.Sel.Name] = true
						calls[name]["Scalar."+fn.Sel.Name] = true
						calls[name][fn.Sel.Name] = true
					case *ast.Ident:
						calls[name][fn.Name] = true
					}
					return true
				})
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for name, callees := range calls {
			if fatal[name] {
				continue
			}
			for c := range callees {
				// Ops called with del=true free their receiver with MustDrop
				// (AtFree of a handle dira owns): not counted, or every op
				// would be fatal.
				if fatal[c] && !strings.HasSuffix(c, "MustDrop") {
					fatal[name], changed = true, true
					break
				}
			}
		}
	}
	var names []string
	for n := range fatal {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("%d fatal gotch functions", len(names))
	return fatal
}
