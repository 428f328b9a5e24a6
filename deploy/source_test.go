package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The repository's root, seen from this module's directory.
const root = ".."

// rosettaEnv returns every ROSETTA_* variable pkg/settings names: the string
// values of its constants, read from its source (importing it would make
// this module depend on all of Rosetta's).
func rosettaEnv(t *testing.T) map[string]bool {
	t.Helper()
	consts := goConsts(t, filepath.Join(root, "pkg", "settings"))
	out := map[string]bool{}
	for _, v := range consts {
		if strings.HasPrefix(v, "ROSETTA_") {
			out[v] = true
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d ROSETTA_* constants in pkg/settings: %v", len(out), out)
	}
	return out
}

// goConsts returns the string constants declared in the non-test Go files
// of dir, by name.
func goConsts(t *testing.T, dir string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, err := strconv.Unquote(lit.Value)
						if err == nil {
							out[n.Name] = v
						}
					}
				}
			}
		}
	}
	return out
}

// binary is what the deployment files must agree with.
type binary struct {
	env             map[string]bool
	liveness, ready string // capture's and sink's probe paths
	apiHealth       string // the API's
	natsVersion     string // nats-server's version in go.mod, without the v
	commands        map[string]bool
}

func readBinary(t *testing.T) binary {
	t.Helper()
	b := binary{env: rosettaEnv(t), commands: map[string]bool{}}
	platform := goConsts(t, filepath.Join(root, "services", "platform"))
	b.liveness, b.ready = platform["LivenessPath"], platform["ReadinessPath"]
	if b.liveness == "" || b.ready == "" {
		t.Fatal("services/platform declares no LivenessPath and ReadinessPath")
	}
	// The probes send no token: GET /api/v1/health must stay public.
	access, err := os.ReadFile(filepath.Join(root, "services", "api", "access.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`"GET /api/v1/health":\s+apitoken.Public`).Match(access) {
		t.Fatal("services/api/access.go no longer serves GET /api/v1/health without a token: update this test and the probes")
	}
	b.apiHealth = "/api/v1/health"
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github\.com/nats-io/nats-server/v2 v(\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("no nats-server in go.mod")
	}
	b.natsVersion = string(m[1])
	main, err := os.ReadFile(filepath.Join(root, "services", "rosetta", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range regexp.MustCompile(`case "([a-z]+)":`).FindAllSubmatch(main, -1) {
		b.commands[string(c[1])] = true
	}
	for _, need := range []string{"api", "capture", "sink"} {
		if !b.commands[need] {
			t.Fatalf("services/rosetta/main.go has no %q command", need)
		}
	}
	return b
}

// port returns the port of a host:port address.
func port(t *testing.T, addr string) int {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	n, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("address %q has no port", addr)
	}
	return n
}
