package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// TestDockerfile parses the Dockerfile as BuildKit does and checks it builds
// the binary as the repository does (cgo for DuckDB, the console when web/
// exists) into a glibc image that runs as a non-root user and sets only
// variables the binary reads.
func TestDockerfile(t *testing.T) {
	b := readBinary(t)
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile line %d: %s", w.Location.Start.Line, w.Short)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile instructions: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
	}
	byName := map[string]instructions.Stage{}
	for _, s := range stages {
		byName[s.Name] = s
	}
	runs := func(s instructions.Stage) []string {
		var out []string
		for _, c := range s.Commands {
			if r, ok := c.(*instructions.RunCommand); ok {
				out = append(out, strings.Join(r.CmdLine, " "))
			}
		}
		return out
	}
	copiesFrom := func(s instructions.Stage, from string) []*instructions.CopyCommand {
		var out []*instructions.CopyCommand
		for _, c := range s.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok && cp.From == from {
				out = append(out, cp)
			}
		}
		return out
	}

	// The Go build: cgo on, the rosetta command.
	var build *instructions.Stage
	for i, s := range stages {
		for _, r := range runs(s) {
			if strings.Contains(r, "go build") && strings.Contains(r, "./services/rosetta") {
				build = &stages[i]
				if !strings.Contains(r, "CGO_ENABLED=1") {
					t.Errorf("stage %s builds without CGO_ENABLED=1; DuckDB's driver needs cgo", s.Name)
				}
			}
		}
	}
	if build == nil {
		t.Fatal("no stage runs go build ./services/rosetta")
	}
	if !strings.HasPrefix(build.BaseName, "golang:") || !strings.Contains(build.BaseName, "bookworm") && !strings.Contains(build.BaseName, "bullseye") {
		t.Errorf("build stage FROM %s: want a Debian (glibc) golang image, matching the runtime's glibc", build.BaseName)
	}

	// The console, when the repository has one.
	if _, err := os.Stat(filepath.Join(root, "web", "package.json")); err == nil {
		web, ok := byName["web"]
		if !ok {
			t.Fatal("web/ exists but the Dockerfile has no stage named web building it")
		}
		r := strings.Join(runs(web), "\n")
		if !strings.Contains(r, "npm ci") || !strings.Contains(r, "npm run build") {
			t.Errorf("web stage runs %q, want npm ci and npm run build", r)
		}
		cps := copiesFrom(*build, "web")
		if len(cps) == 0 || cps[0].DestPath != "./web/dist/console" {
			t.Errorf("the build stage must copy the built console into ./web/dist/console (web/embed.go embeds it); copies %v", cps)
		}
	}

	// The runtime: glibc, non-root, the binary as entrypoint.
	final := stages[len(stages)-1]
	if !strings.Contains(final.BaseName, "distroless/cc") && !strings.Contains(final.BaseName, "-slim") {
		t.Errorf("runtime FROM %s: want a minimal glibc base (distroless/cc or debian-slim)", final.BaseName)
	}
	var user string
	var entry []string
	var exposed []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			entry = c.CmdLine
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if strings.HasPrefix(kv.Key, "ROSETTA_") && !b.env[kv.Key] {
					t.Errorf("ENV %s: pkg/settings has no such variable", kv.Key)
				}
				if kv.Key == "ROSETTA_HTTP_ADDR" && port(t, kv.Value) != 8080 {
					t.Errorf("ENV ROSETTA_HTTP_ADDR=%s: the manifests expect 8080", kv.Value)
				}
			}
		}
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0:") || user == "0" {
		t.Errorf("runtime USER %q: want a non-root user", user)
	}
	if len(entry) != 1 || len(copiesFrom(final, build.Name)) == 0 {
		t.Errorf("ENTRYPOINT %v: want the binary copied from the build stage, in exec form", entry)
	}
	for _, p := range []string{"8080", "8081", "9090"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE %v lacks %s", exposed, p)
		}
	}
}
