package api

import (
	"context"
	"fmt"
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

// TestTokenAPIAndAudit manages tokens over the API and checks the audit
// log: who made each change, before and after, and no secret in it.
func TestTokenAPIAndAudit(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	_, js := testkit.StartNATS(t).Connect(t)
	f := &fixture{pg: pg, js: js, destDB: pg.CreateDatabase(t, "dest")}
	c := newClient(t, f, js, nil)

	var tok tokenView
	c.must(201, "POST", "/tokens", map[string]any{"name": "ci", "role": "operator", "expires_in": "24h"}, &tok)
	if !strings.HasPrefix(tok.Token, apitoken.Prefix) || tok.Role != "operator" || tok.ExpiresAt == nil ||
		time.Until(*tok.ExpiresAt) < 23*time.Hour {
		t.Fatalf("created token %+v", tok)
	}
	c.wantError("POST", "/tokens", map[string]any{"name": "ci", "role": "viewer"}, 409, "name")
	c.wantError("POST", "/tokens", map[string]any{"name": "x", "role": "root"}, 422, "role", "viewer, operator or admin")
	c.wantError("POST", "/tokens", map[string]any{"name": "x", "role": "viewer", "expires_in": "-1h"}, 422, "expires_in")
	// Names refuse invisible format characters as well as controls.
	c.wantError("POST", "/tokens", map[string]any{"name": "admin\u202e", "role": "viewer"}, 422, "name", "format characters")
	bidi := c.pgDestBody("wh\u200b")
	c.wantError("POST", "/destinations", bidi, 422, "name", "format characters")
	var list listBody[tokenView]
	c.must(200, "GET", "/tokens", nil, &list)
	if list.Total != 2 || list.Items[1].Name != "ci" || list.Items[1].Token != "" {
		t.Fatalf("tokens = %+v", list)
	}

	// The operator token works, cannot manage tokens, and stops once revoked.
	admin := c.token
	c.token = tok.Token
	c.wantError("GET", "/tokens", nil, 403, "", "admin role")
	c.must(200, "GET", "/whoami", nil, nil)
	c.token = admin
	c.must(200, "DELETE", fmt.Sprintf("/tokens/%d", tok.ID), nil, nil)
	c.token = tok.Token
	c.wantError("GET", "/whoami", nil, 401, "")
	c.token = admin

	var d idView
	c.must(201, "POST", "/destinations", c.pgDestBody("wh"), &d)
	upd := c.pgDestBody("wh2")
	c.must(200, "PUT", fmt.Sprintf("/destinations/%d", d.ID), upd, nil)
	c.must(204, "DELETE", fmt.Sprintf("/destinations/%d", d.ID), nil, nil)

	var audit listBody[auditView]
	raw := c.must(200, "GET", "/audit?limit=10", nil, &audit)
	for _, s := range append(allSecrets, tok.Token, admin) {
		if strings.Contains(string(raw), s) {
			t.Fatalf("the audit log holds a secret or token: %s", raw)
		}
	}
	var got []string
	for _, e := range audit.Items {
		got = append(got, fmt.Sprintf("%s %s %s %s before=%t after=%t", e.Token, e.Action, e.Entity, e.EntityID,
			string(e.Before) != "null", string(e.After) != "null"))
	}
	want := []string{
		fmt.Sprintf("test-admin delete destinations %d before=true after=false", d.ID),
		fmt.Sprintf("test-admin update destinations %d before=true after=true", d.ID),
		fmt.Sprintf("test-admin create destinations %d before=false after=true", d.ID),
		fmt.Sprintf("test-admin revoke tokens %d before=true after=true", tok.ID),
		fmt.Sprintf("test-admin create tokens %d before=false after=true", tok.ID),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || audit.Total != 5 {
		t.Fatalf("audit log (%d):\n%s\nwant:\n%s", audit.Total, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(string(audit.Items[1].Before), `"name":"wh"`) || !strings.Contains(string(audit.Items[1].After), `"name":"wh2"`) ||
		!strings.Contains(string(audit.Items[1].After), `"password_set":true`) {
		t.Fatalf("update before/after: %s / %s", audit.Items[1].Before, audit.Items[1].After)
	}
	c.must(200, "GET", "/audit?limit=2&offset=4", nil, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Action != "create" || audit.Items[0].Entity != "tokens" {
		t.Fatalf("audit page 3: %+v", audit.Items)
	}
}
