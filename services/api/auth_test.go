package api

import (
	"context"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/apitoken"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestTokens checks authentication: a missing, malformed, unknown, expired
// or revoked token is a 401 and nothing is changed; a role too low is a
// 403; the bootstrap token replaces its predecessor.
func TestTokens(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	_, js := testkit.StartNATS(t).Connect(t)
	c := newClient(t, &fixture{pg: pg, js: js}, js, nil)
	ctx := context.Background()
	admin := c.token

	var who whoamiView
	c.must(200, "GET", "/whoami", nil, &who)
	if who.Name != "test-admin" || who.Role != "admin" {
		t.Fatalf("whoami = %+v", who)
	}

	past := time.Now().Add(-time.Minute)
	expired, _, err := c.store.CreateToken(ctx, configstore.TokenInput{Name: "old", Role: apitoken.Admin, ExpiresAt: &past})
	if err != nil {
		t.Fatal(err)
	}
	revoked, rt, err := c.store.CreateToken(ctx, configstore.TokenInput{Name: "gone", Role: apitoken.Admin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.store.RevokeToken(ctx, rt.ID); err != nil {
		t.Fatal(err)
	}
	viewer := c.mustToken("v", apitoken.Viewer)
	body := map[string]any{"name": "d", "type": "duckdb", "config": map[string]any{"path": "x.duckdb"}}
	for name, header := range map[string]string{
		"none":      "",
		"malformed": "Basic " + admin,
		"unknown":   "Bearer " + admin + "x",
		"expired":   "Bearer " + expired,
		"revoked":   "Bearer " + revoked,
		"empty":     "Bearer ",
	} {
		req := httptest.NewRequest("POST", "/api/v1/destinations", strings.NewReader(`{"name":"d","type":"duckdb","config":{"path":"x.duckdb"}}`))
		req.Header.Set("Content-Type", "application/json")
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := c.srv.App().Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s token: %d (WWW-Authenticate %q), want 401", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	c.token = viewer
	c.wantError("POST", "/destinations", body, 403, "", "admin role", `"v"`, "viewer")
	if _, total, err := c.store.ListDestinations(ctx, configstore.Page{}); err != nil || total != 0 {
		t.Fatalf("refused requests changed the config: %d destinations (%v)", total, err)
	}

	// last_used_at is recorded.
	toks, _, err := c.store.ListTokens(ctx, true, configstore.Page{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if (tk.Name == "v" || tk.Name == "test-admin") != (tk.LastUsedAt != nil) {
			t.Errorf("token %s last used %v", tk.Name, tk.LastUsedAt)
		}
	}

	// Bootstrap: stored, then replaced when the value changes.
	boot1, boot2 := strings.Repeat("a", 32), strings.Repeat("b", 40)
	if err := c.srv.Bootstrap(ctx, "short"); err == nil {
		t.Fatal("a short bootstrap token was accepted")
	}
	for _, v := range []string{boot1, boot1, boot2} {
		if err := c.srv.Bootstrap(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	c.token = boot1
	c.wantError("GET", "/whoami", nil, 401, "")
	c.token = boot2
	c.must(200, "GET", "/whoami", nil, &who)
	if who.Name != configstore.BootstrapTokenName || who.Role != "admin" {
		t.Fatalf("bootstrap whoami = %+v", who)
	}
}

// TestAccessMatrix walks every operation of contracts/openapi.yaml with
// no token and a token of each role and checks the status against the
// access matrix: 401 without a token, 403 below the least role, anything
// else (the handler ran) at or above it. It also checks that the matrix,
// the server's routes, the OpenAPI file and docs/security.md name the same
// routes.
func TestAccessMatrix(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	_, js := testkit.StartNATS(t).Connect(t)
	c := newClient(t, &fixture{pg: pg, js: js}, js, nil)
	tokens := map[apitoken.Role]string{}
	for _, r := range apitoken.Roles {
		tokens[r] = c.mustToken("matrix-"+r.String(), r)
	}

	c.srv.UseMetrics(metrics.New())
	param := regexp.MustCompile(`\{(\w+)\}`)
	// /metrics is outside /api/v1 and the OpenAPI file (Prometheus's
	// format), but behind a token all the same.
	spec := append(specOperations(readSpec(t)), "GET /metrics")
	sort.Strings(spec)
	routes := matrixRoutes(t, c.srv)
	if strings.Join(spec, "\n") != strings.Join(routes, "\n") {
		t.Fatalf("the OpenAPI operations and the routes differ:\nopenapi:\n%s\n\nserver:\n%s", strings.Join(spec, "\n"), strings.Join(routes, "\n"))
	}
	var matrix []string
	for k := range accessMatrix {
		matrix = append(matrix, specOp(k))
	}
	sort.Strings(matrix)
	if strings.Join(matrix, "\n") != strings.Join(routes, "\n") {
		t.Fatalf("the access matrix and the routes differ:\nmatrix:\n%s\n\nserver:\n%s", strings.Join(matrix, "\n"), strings.Join(routes, "\n"))
	}
	checkSecurityDoc(t)

	for _, op := range spec {
		method, path, _ := strings.Cut(op, " ")
		min := accessMatrix[method+" "+fiberPath(path)]
		url := param.ReplaceAllString(path, "1")
		if path != "/metrics" {
			url = "/api/v1" + url
		}
		for _, role := range append([]apitoken.Role{apitoken.Public}, apitoken.Roles...) {
			req := httptest.NewRequest(method, url, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			if role != apitoken.Public {
				req.Header.Set("Authorization", "Bearer "+tokens[role])
			}
			resp, err := c.srv.App().Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.StatusCode
			switch {
			case role.Allows(min):
				if got == 401 || got == 403 {
					t.Errorf("%s as %s: %d, want the handler's answer (least role %s)", op, role, got, min)
				}
			case role == apitoken.Public:
				if got != 401 {
					t.Errorf("%s without a token: %d, want 401", op, got)
				}
			default:
				if got != 403 {
					t.Errorf("%s as %s: %d, want 403 (least role %s)", op, role, got, min)
				}
			}
		}
	}
}

// matrixRoutes returns the server's routes as OpenAPI operations.
func matrixRoutes(t *testing.T, s *Server) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for _, r := range s.App().GetRoutes(true) {
		if r.Method == "HEAD" || (!strings.HasPrefix(r.Path, "/api/v1/") && r.Path != "/metrics") {
			continue
		}
		op := specOp(r.Method + " " + r.Path)
		if !seen[op] {
			seen[op] = true
			out = append(out, op)
		}
	}
	sort.Strings(out)
	return out
}

// specOp turns "GET /api/v1/sources/:id" into "GET /sources/{id}", the
// OpenAPI form (/metrics stays as it is: it is outside /api/v1).
func specOp(route string) string {
	method, path, _ := strings.Cut(route, " ")
	path = regexp.MustCompile(`:(\w+)`).ReplaceAllString(strings.TrimPrefix(path, "/api/v1"), "{$1}")
	return method + " " + path
}

func fiberPath(specPath string) string {
	p := regexp.MustCompile(`\{(\w+)\}`).ReplaceAllString(specPath, ":$1")
	if p == "/metrics" {
		return p
	}
	return "/api/v1" + p
}

// checkSecurityDoc compares the route table of docs/security.md (rows
// "| `METHOD /path` | role |") with the access matrix.
func checkSecurityDoc(t *testing.T) {
	t.Helper()
	raw, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(GET|POST|PUT|DELETE|PATCH) (/[^`]*)` \\| (\\w+) \\|")
	doc := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		doc[m[1]+" "+fiberPath(m[2])] = m[3]
	}
	for route, role := range accessMatrix {
		if doc[route] != role.String() {
			t.Errorf("docs/security.md: %s is %q, the matrix says %s", specOp(route), doc[route], role)
		}
	}
	for route := range doc {
		if _, ok := accessMatrix[route]; !ok {
			t.Errorf("docs/security.md lists %s, which the matrix does not have", specOp(route))
		}
	}
}
