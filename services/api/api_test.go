package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/apitoken"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/services/sink/drivers/builtin"
)

// Secrets the tests send; no response body and no log line may contain
// them. The test clusters trust every local connection, so the passwords
// are accepted whatever they are.
const (
	sourcePassword = "Src-Pa55word-never-shown"
	destPassword   = "Dst-Pa55word-never-shown"
	privateKey     = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-never-shown\n-----END PRIVATE KEY-----"
	passphrase     = "Key-Passphrase-never-shown"
)

var allSecrets = []string{sourcePassword, destPassword, privateKey, passphrase, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"}

// fixture is shared by the subtests of TestAPI: one PostgreSQL cluster
// (config databases, source and destination databases) and one NATS.
type fixture struct {
	pg       *testkit.Postgres
	js       jetstream.JetStream
	sourceDB string
	destDB   string
}

// client is one API server over its own config database.
type client struct {
	t     *testing.T
	srv   *Server
	store *configstore.Store
	cfgDB string
	logs  *syncBuffer
	f     *fixture
	// token is sent as the bearer token; newClient makes an admin one.
	token string
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newClient(t *testing.T, f *fixture, js jetstream.JetStream, redis Pinger) *client {
	t.Helper()
	// The suites send many checked requests with one token quickly;
	// testOutboundLimits tests the limits.
	return newClientConfig(t, f, js, redis, Config{Addr: "127.0.0.1:0", Outbound: OutboundLimits{PerMinute: 6000, Burst: 1000, Concurrent: 64}})
}

func newClientConfig(t *testing.T, f *fixture, js jetstream.JetStream, redis Pinger, cfg Config) *client {
	t.Helper()
	ctx := context.Background()
	cfgDB := f.pg.CreateDatabase(t, "cfg")
	box, err := secrets.NewBox("api-test-secret-key-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	store, err := configstore.Open(ctx, f.pg.DSN(cfgDB), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// The types' fields only: their checkers are set by the tests that
	// want them, as the composition root sets them.
	if cfg.DestinationTypes == nil {
		cfg.DestinationTypes = builtin.Types()
	}
	srv, err := New(cfg, store, js, redis, log)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := store.CreateToken(ctx, configstore.TokenInput{Name: "test-admin", Role: apitoken.Admin})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, srv: srv, store: store, cfgDB: cfgDB, logs: logs, f: f, token: token}
	t.Cleanup(func() {
		for _, s := range allSecrets {
			if strings.Contains(logs.String(), s) {
				t.Errorf("the log contains a secret:\n%s", logs.String())
			}
		}
	})
	return c
}

// do sends a request; body is sent as is when it is a string, as JSON
// otherwise. Every response is checked for secrets.
func (c *client) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	code, raw, _ := c.doHeaders(method, path, body)
	return code, raw
}

// doHeaders is do, also returning the response's headers.
func (c *client) doHeaders(method, path string, body any) (int, []byte, http.Header) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, "/api/v1"+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.srv.App().Test(req, -1)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, s := range allSecrets {
		if bytes.Contains(raw, []byte(s)) {
			c.t.Fatalf("%s %s: the response contains a secret: %s", method, path, raw)
		}
	}
	return resp.StatusCode, raw, resp.Header
}

// mustToken creates a token of role and returns its value.
func (c *client) mustToken(name string, role apitoken.Role) string {
	c.t.Helper()
	v, _, err := c.store.CreateToken(context.Background(), configstore.TokenInput{Name: name, Role: role})
	if err != nil {
		c.t.Fatal(err)
	}
	return v
}

// must sends a request, fails unless the status is want, and decodes the
// answer into out (when not nil).
func (c *client) must(want int, method, path string, body, out any) []byte {
	c.t.Helper()
	code, raw := c.do(method, path, body)
	if code != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return raw
}

// wantError checks an error answer: its status, field and words in its
// message.
func (c *client) wantError(method, path string, body any, status int, field string, words ...string) {
	c.t.Helper()
	code, raw := c.do(method, path, body)
	var e errorBody
	if err := json.Unmarshal(raw, &e); err != nil {
		c.t.Fatalf("%s %s: error body %s: %v", method, path, raw, err)
	}
	if code != status || e.Field != field {
		c.t.Fatalf("%s %s: status %d field %q (%s), want %d field %q", method, path, code, e.Field, e.Error, status, field)
	}
	for _, w := range words {
		if !strings.Contains(e.Error, w) {
			c.t.Fatalf("%s %s: error %q does not say %q", method, path, e.Error, w)
		}
	}
}

func (c *client) sourceBody(name string) map[string]any {
	return map[string]any{"name": name, "host": c.f.pg.Host(), "port": c.f.pg.Port, "database": c.f.sourceDB,
		"user": "postgres", "password": sourcePassword, "sslmode": "disable"}
}

func (c *client) pgDestBody(name string) map[string]any {
	return map[string]any{"name": name, "type": "postgres", "config": map[string]any{
		"host": c.f.pg.Host(), "port": c.f.pg.Port, "database": c.f.destDB, "user": "postgres",
		"password": destPassword, "sslmode": "disable"}}
}

type idView struct {
	ID int64 `json:"id"`
}

func TestAPI(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	f := &fixture{pg: pg, js: js, sourceDB: pg.CreateDatabase(t, "source"), destDB: pg.CreateDatabase(t, "dest")}
	pg.Exec(t, f.sourceDB, `
		CREATE TABLE public.orders (id bigint PRIMARY KEY, amount numeric);
		CREATE TABLE public.customers (id bigint PRIMARY KEY, name text);
		CREATE TABLE public.events (id bigint, payload text);
		CREATE TABLE public.audit_log (id bigint, payload text);
		ALTER TABLE public.audit_log REPLICA IDENTITY FULL;
		CREATE SCHEMA archive;
		CREATE TABLE archive.orders (id bigint PRIMARY KEY);
	`)

	t.Run("sources", func(t *testing.T) { t.Parallel(); testSources(t, newClient(t, f, js, nil)) })
	t.Run("source validation", func(t *testing.T) { t.Parallel(); testSourceValidation(t, newClient(t, f, js, nil)) })
	t.Run("destinations", func(t *testing.T) { t.Parallel(); testDestinations(t, newClient(t, f, js, nil)) })
	t.Run("destination validation", func(t *testing.T) { t.Parallel(); testDestinationValidation(t, newClient(t, f, js, nil)) })
	t.Run("snowflake check", func(t *testing.T) { t.Parallel(); testSnowflakeCheck(t, newClient(t, f, js, nil)) })
	t.Run("pipelines", func(t *testing.T) { t.Parallel(); testPipelines(t, newClient(t, f, js, nil)) })
	t.Run("partitions", func(t *testing.T) { t.Parallel(); testPartitions(t, newClient(t, f, js, nil)) })
	t.Run("pagination", func(t *testing.T) { t.Parallel(); testPagination(t, newClient(t, f, js, nil)) })
	t.Run("catalog", func(t *testing.T) { t.Parallel(); testCatalog(t, newClient(t, f, js, nil)) })
	t.Run("duckdb query", func(t *testing.T) { t.Parallel(); testQuery(t, newClient(t, f, js, nil)) })
	t.Run("lag from the stream", func(t *testing.T) { t.Parallel(); testLagFromStream(t, f) })
	t.Run("lag across partitions", func(t *testing.T) { t.Parallel(); testLagAcrossPartitions(t, f) })
	t.Run("events", func(t *testing.T) { t.Parallel(); testEvents(t, f) })
	t.Run("health", func(t *testing.T) { t.Parallel(); testHealth(t, f) })
	t.Run("listen and shutdown", func(t *testing.T) { t.Parallel(); testListen(t, newClient(t, f, js, nil)) })
	t.Run("outbound limits", func(t *testing.T) { t.Parallel(); testOutboundLimits(t, f, js) })
	t.Run("confined paths", func(t *testing.T) { t.Parallel(); testConfinedPaths(t, f, js) })
	t.Run("link security", func(t *testing.T) { t.Parallel(); testLinkSecurity(t, f, js) })
	t.Run("replication objects", func(t *testing.T) { t.Parallel(); testReplicationObjects(t, f, js) })
	t.Run("tls listener", func(t *testing.T) { t.Parallel(); testTLS(t, newClient(t, f, js, nil)) })
	t.Run("fx module", func(t *testing.T) { t.Parallel(); testModule(t, newClient(t, f, js, nil)) })
}

func testSources(t *testing.T, c *client) {
	ctx := context.Background()
	var src sourceView
	c.must(201, "POST", "/sources", c.sourceBody("shop"), &src)
	if src.ID == 0 || src.Name != "shop" || !src.PasswordSet || src.SSLMode != "disable" || src.User != "postgres" {
		t.Fatalf("created source = %+v", src)
	}
	inst, _ := c.store.InstallationID(ctx)
	if want := configstore.DerivedName(inst, src.ID); src.Slot != want || src.Publication != want {
		t.Fatalf("slot %q publication %q, want the derived %q", src.Slot, src.Publication, want)
	}

	// The raw column holds ciphertext.
	var raw []byte
	if err := c.f.pg.Connect(t, c.cfgDB).QueryRow(ctx, `SELECT password_enc FROM sources WHERE id = $1`, src.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || bytes.Contains(raw, []byte(sourcePassword)) {
		t.Fatalf("password stored in clear: %q", raw)
	}

	var got sourceView
	body := c.must(200, "GET", fmt.Sprintf("/sources/%d", src.ID), nil, &got)
	if got.ID != src.ID || got.Name != "shop" || strings.Contains(string(body), `"password"`) {
		t.Fatalf("get = %s", body)
	}

	c.wantError("POST", "/sources", c.sourceBody("shop"), 409, "name", `"shop" already exists`)

	// PUT without a password keeps the stored one; explicit slot and
	// publication are kept as given.
	upd := c.sourceBody("shop-renamed")
	delete(upd, "password")
	upd["slot"] = "custom_slot"
	upd["publication"] = "custom_pub"
	c.must(200, "PUT", fmt.Sprintf("/sources/%d", src.ID), upd, &got)
	if got.Name != "shop-renamed" || !got.PasswordSet || got.Slot != "custom_slot" || got.Publication != "custom_pub" {
		t.Fatalf("updated = %+v", got)
	}
	full, err := c.store.SourceWithSecrets(ctx, src.ID)
	if err != nil || full.Password != sourcePassword {
		t.Fatalf("password after PUT without one: %v", err)
	}

	var list listBody[sourceView]
	c.must(200, "GET", "/sources", nil, &list)
	if list.Total != 1 || len(list.Items) != 1 || list.Limit != 50 || list.Offset != 0 {
		t.Fatalf("list = %+v", list)
	}

	c.wantError("GET", "/sources/999999", nil, 404, "", "source 999999 does not exist")
	c.wantError("PUT", "/sources/999999", c.sourceBody("x"), 404, "", "does not exist")
	c.wantError("DELETE", "/sources/999999", nil, 404, "", "does not exist")
	c.wantError("GET", "/sources/abc", nil, 400, "id", "positive integer")

	c.must(204, "DELETE", fmt.Sprintf("/sources/%d", src.ID), nil, nil)
	c.wantError("GET", fmt.Sprintf("/sources/%d", src.ID), nil, 404, "")

	// Migrating again (every service start does) changes nothing.
	if err := c.store.Migrate(ctx); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	c.must(200, "GET", "/sources", nil, &list)
}

func testSourceValidation(t *testing.T, c *client) {
	with := func(k string, v any) map[string]any {
		b := c.sourceBody("v")
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
		return b
	}
	unreachable := with("port", testkit.FreePort(t))
	tests := []struct {
		name   string
		body   any
		status int
		field  string
		words  []string
	}{
		{"empty body", "", 400, "", []string{"empty"}},
		{"malformed JSON", `{"name": "x",`, 400, "", []string{"invalid JSON"}},
		{"not an object", `[1, 2]`, 400, "", []string{"JSON object"}},
		{"trailing data", `{"name": "x"} {}`, 400, "", []string{"after the JSON object"}},
		{"unknown field", with("pasword", "x"), 400, "pasword", []string{`unknown field "pasword"`}},
		{"missing name", with("name", nil), 422, "name", []string{"name is required"}},
		{"blank name", with("name", "  "), 422, "name", []string{"must not be empty"}},
		{"missing host", with("host", nil), 422, "host", []string{"host is required"}},
		{"port as string", with("port", "5432"), 422, "port", []string{"port must be an integer, not a string"}},
		{"fractional port", with("port", 54.5), 422, "port", []string{"integer"}},
		{"port out of range", with("port", 70000), 422, "port", []string{"1 to 65535"}},
		{"missing database", with("database", nil), 422, "database", []string{"required"}},
		{"user as number", with("user", 5), 422, "user", []string{"user must be a string"}},
		{"bad sslmode", with("sslmode", "sometimes"), 422, "sslmode", []string{"verify-full"}},
		{"bad slot", with("slot", "My-Slot"), 422, "slot", []string{"lower-case"}},
		{"no partitions", with("partitions", 0), 422, "partitions", []string{"partitions must be from 1 to 64"}},
		{"too many partitions", with("partitions", 65), 422, "partitions", []string{"partitions must be from 1 to 64"}},
		{"partitions as string", with("partitions", "4"), 422, "partitions", []string{"integer"}},
		{"unknown database", with("database", "no_such_db"), 422, "database", []string{"no_such_db", "does not exist"}},
		{"unreachable", unreachable, 422, "host", []string{"cannot reach PostgreSQL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.wantError("POST", "/sources", tt.body, tt.status, tt.field, tt.words...)
		})
	}
	// Nothing was stored.
	var list listBody[sourceView]
	c.must(200, "GET", "/sources", nil, &list)
	if list.Total != 0 {
		t.Fatalf("invalid requests stored %d sources", list.Total)
	}
	// PUT validates too, and moving a source somewhere unreachable is refused.
	var src idView
	c.must(201, "POST", "/sources", c.sourceBody("ok"), &src)
	c.wantError("PUT", fmt.Sprintf("/sources/%d", src.ID), with("port", "x"), 422, "port")
	moved := c.sourceBody("ok")
	moved["port"] = testkit.FreePort(t)
	c.wantError("PUT", fmt.Sprintf("/sources/%d", src.ID), moved, 422, "host", "cannot reach")
}

func testDestinations(t *testing.T, c *client) {
	ctx := context.Background()
	var d destinationView
	c.must(201, "POST", "/destinations", c.pgDestBody("warehouse"), &d)
	if d.Type != "postgres" || d.PasswordSet == nil || !*d.PasswordSet || d.Config["schema"] != "public" || d.Config["dropped_columns"] != "keep" || d.Config["port"] != float64(c.f.pg.Port) {
		t.Fatalf("created = %+v", d)
	}
	if _, ok := d.Config["password"]; ok {
		t.Fatalf("config shows the password field: %v", d.Config)
	}
	full, err := c.store.DestinationWithSecrets(ctx, d.ID)
	if err != nil || full.Secrets["password"] != destPassword {
		t.Fatalf("stored secrets: %v", err)
	}
	var cfgText string
	var sealed []byte
	if err := c.f.pg.Connect(t, c.cfgDB).QueryRow(ctx, `SELECT config::text, secrets FROM destinations WHERE id = $1`, d.ID).Scan(&cfgText, &sealed); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cfgText, destPassword) || bytes.Contains(sealed, []byte(destPassword)) {
		t.Fatal("destination password stored in clear")
	}

	// Snowflake: private key write-only, kept on PUT when omitted.
	var sf destinationView
	c.must(201, "POST", "/destinations", map[string]any{"name": "snow", "type": "snowflake", "config": map[string]any{
		"account": "acme-xy123", "user": "LOADER", "database": "RAW", "schema": "PUBLIC", "warehouse": "WH",
		"private_key": privateKey, "private_key_passphrase": passphrase}}, &sf)
	if sf.PrivateKeySet == nil || !*sf.PrivateKeySet || sf.PrivateKeyPassphraseSet == nil || !*sf.PrivateKeyPassphraseSet || sf.PasswordSet != nil {
		t.Fatalf("snowflake view = %+v", sf)
	}
	c.must(200, "PUT", fmt.Sprintf("/destinations/%d", sf.ID), map[string]any{"name": "snow", "type": "snowflake", "config": map[string]any{
		"account": "acme-xy123", "user": "LOADER", "database": "RAW", "schema": "STAGING"}}, &sf)
	if sf.Config["schema"] != "STAGING" || !*sf.PrivateKeySet {
		t.Fatalf("after PUT = %+v", sf)
	}
	fullSF, _ := c.store.DestinationWithSecrets(ctx, sf.ID)
	if fullSF.Secrets["private_key"] != privateKey || fullSF.Secrets["private_key_passphrase"] != passphrase {
		t.Fatal("PUT without secrets lost them")
	}
	// Clearing the key without a path is refused: the destination would
	// have no way to authenticate.
	c.wantError("PUT", fmt.Sprintf("/destinations/%d", sf.ID), map[string]any{"name": "snow", "type": "snowflake", "config": map[string]any{
		"account": "a", "user": "u", "database": "d", "schema": "s", "private_key": ""}}, 422, "config.private_key", "private_key_path")

	var duck destinationView
	c.must(201, "POST", "/destinations", map[string]any{"name": "local", "type": "duckdb", "config": map[string]any{"path": "/tmp/x.duckdb"}}, &duck)
	if duck.Config["schema"] != "main" || duck.PasswordSet != nil {
		t.Fatalf("duckdb view = %+v", duck)
	}

	var list listBody[destinationView]
	c.must(200, "GET", "/destinations", nil, &list)
	if list.Total != 3 || len(list.Items) != 3 {
		t.Fatalf("list = %+v", list)
	}
	c.wantError("POST", "/destinations", c.pgDestBody("warehouse"), 409, "name", "already exists")
	c.wantError("GET", "/destinations/424242", nil, 404, "")
	c.must(204, "DELETE", fmt.Sprintf("/destinations/%d", duck.ID), nil, nil)
	c.wantError("DELETE", fmt.Sprintf("/destinations/%d", duck.ID), nil, 404, "")
}

func testDestinationValidation(t *testing.T, c *client) {
	pgWith := func(k string, v any) map[string]any {
		b := c.pgDestBody("v")
		cfg := b["config"].(map[string]any)
		if v == nil {
			delete(cfg, k)
		} else {
			cfg[k] = v
		}
		return b
	}
	tests := []struct {
		name   string
		body   any
		status int
		field  string
		words  []string
	}{
		{"missing type", map[string]any{"name": "x", "config": map[string]any{}}, 422, "type", []string{"postgres, snowflake or duckdb"}},
		{"unknown type", map[string]any{"name": "x", "type": "oracle", "config": map[string]any{}}, 422, "type", []string{`"oracle" is not supported`}},
		{"missing config", map[string]any{"name": "x", "type": "duckdb"}, 422, "config", []string{"required"}},
		{"config not an object", `{"name":"x","type":"duckdb","config":"path"}`, 422, "config", []string{"must be an object"}},
		{"unknown config field", pgWith("hots", "x"), 400, "config.hots", []string{"unknown field config.hots", "host, port"}},
		{"missing host", pgWith("host", nil), 422, "config.host", []string{"required for a postgres destination"}},
		{"port as string", pgWith("port", "x"), 422, "config.port", []string{"integer"}},
		{"password as number", pgWith("password", 5), 422, "config.password", []string{"string"}},
		{"bad sslmode", pgWith("sslmode", "nope"), 422, "config.sslmode", []string{"one of"}},
		{"bad dropped_columns", pgWith("dropped_columns", "forget"), 422, "config.dropped_columns", []string{"keep, drop"}},
		{"duckdb bad dropped_columns", map[string]any{"name": "x", "type": "duckdb", "config": map[string]any{"path": "p", "dropped_columns": "NULL"}},
			422, "config.dropped_columns", []string{"keep, drop"}},
		{"snowflake bad dropped_columns", map[string]any{"name": "x", "type": "snowflake", "config": map[string]any{
			"account": "a", "user": "u", "database": "d", "schema": "s", "private_key_path": "/k.p8", "dropped_columns": "forget"}},
			422, "config.dropped_columns", []string{"keep, drop"}},
		{"unreachable", pgWith("port", testkit.FreePort(t)), 422, "config.host", []string{"cannot reach PostgreSQL"}},
		{"unknown database", pgWith("database", "nope_db"), 422, "config.database", []string{"nope_db"}},
		{"snowflake without key", map[string]any{"name": "x", "type": "snowflake", "config": map[string]any{
			"account": "a", "user": "u", "database": "d", "schema": "s"}}, 422, "config.private_key", []string{"private_key_path"}},
		{"snowflake without account", map[string]any{"name": "x", "type": "snowflake", "config": map[string]any{
			"user": "u", "database": "d", "schema": "s", "private_key_path": "/k.p8"}}, 422, "config.account", []string{"required"}},
		{"duckdb without path", map[string]any{"name": "x", "type": "duckdb", "config": map[string]any{}}, 422, "config.path", []string{"required"}},
		{"unknown top-level field", map[string]any{"name": "x", "type": "duckdb", "config": map[string]any{"path": "p"}, "id": 4}, 400, "id", []string{"unknown field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.wantError("POST", "/destinations", tt.body, tt.status, tt.field, tt.words...)
		})
	}
}

func manyTables(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("public.t%d", i)
	}
	return out
}

func manyIDs(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

func testPipelines(t *testing.T, c *client) {
	ctx := context.Background()
	var src, d1, d2 idView
	c.must(201, "POST", "/sources", c.sourceBody("src"), &src)
	c.must(201, "POST", "/destinations", c.pgDestBody("d1"), &d1)
	c.must(201, "POST", "/destinations", map[string]any{"name": "d2", "type": "duckdb", "config": map[string]any{"path": "x"}}, &d2)
	body := func(name string, tables ...string) map[string]any {
		return map[string]any{"name": name, "source_id": src.ID, "destination_ids": []int64{d1.ID, d2.ID}, "tables": tables}
	}

	var p pipelineView
	c.must(201, "POST", "/pipelines", body("p", "public.orders", "public.audit_log"), &p)
	if p.Status != "PAUSE" || len(p.DestinationIDs) != 2 || len(p.Tables) != 2 {
		t.Fatalf("created = %+v", p)
	}
	path := fmt.Sprintf("/pipelines/%d", p.ID)

	tests := []struct {
		name   string
		body   any
		status int
		field  string
		words  []string
	}{
		{"no primary key", body("x", "public.orders", "public.events"), 422, "tables",
			[]string{`public.events has no primary key: add one, or run ALTER TABLE "public"."events" REPLICA IDENTITY FULL`}},
		{"missing table", body("x", "public.nope"), 422, "tables", []string{"public.nope does not exist"}},
		{"same name in two schemas", body("x", "public.orders", "archive.orders"), 422, "tables", []string{"same table name in different schemas"}},
		{"unqualified table", body("x", "orders"), 422, "tables", []string{"schema.table"}},
		{"no tables", body("x"), 422, "tables", []string{"at least one"}},
		{"unknown source", map[string]any{"name": "x", "source_id": 987654, "destination_ids": []int64{d1.ID}, "tables": []string{"public.orders"}}, 422, "source_id", []string{"source 987654 does not exist"}},
		{"unknown destination", map[string]any{"name": "x", "source_id": src.ID, "destination_ids": []int64{987654}, "tables": []string{"public.orders"}}, 422, "destination_ids", []string{"destination 987654 does not exist"}},
		{"no destinations", map[string]any{"name": "x", "source_id": src.ID, "destination_ids": []int64{}, "tables": []string{"public.orders"}}, 422, "destination_ids", []string{"at least one"}},
		{"destination ids as strings", map[string]any{"name": "x", "source_id": src.ID, "destination_ids": []string{"1"}, "tables": []string{"public.orders"}}, 422, "destination_ids", []string{"integer"}},
		{"duplicate name", body("p", "public.orders"), 409, "name", []string{`"p" already exists`}},
		{"too many tables", body("x", manyTables(maxPipelineTables+1)...), 422, "tables", []string{"at most 1000 tables, got 1001"}},
		{"too many destinations", map[string]any{"name": "x", "source_id": src.ID, "destination_ids": manyIDs(maxPipelineDestinations + 1), "tables": []string{"public.orders"}}, 422, "destination_ids", []string{"at most 20 destinations"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.wantError("POST", "/pipelines", tt.body, tt.status, tt.field, tt.words...)
		})
	}

	// Status and reported state.
	var detail pipelineDetail
	c.must(200, "GET", path, nil, &detail)
	if detail.Status != "PAUSE" || detail.SourceState.State != "UNKNOWN" || len(detail.Destinations) != 2 ||
		detail.Destinations[0].Health != "PAUSED" || detail.Destinations[0].Name != "d1" {
		t.Fatalf("detail = %+v", detail)
	}
	c.must(200, "POST", path+"/start", nil, &p)
	if p.Status != "START" {
		t.Fatalf("after start: %+v", p)
	}
	applied := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := c.store.SetDestinationState(ctx, configstore.DestinationState{PipelineID: p.ID, DestinationID: d1.ID,
		Health: configstore.HealthError, LastError: "relation missing", LastAppliedAt: applied}); err != nil {
		t.Fatal(err)
	}
	if err := c.store.SetSourceState(ctx, configstore.SourceState{SourceID: src.ID, State: "RUNNING", ConfirmedLSN: "0/1A2B3C"}); err != nil {
		t.Fatal(err)
	}
	c.must(200, "GET", path, nil, &detail)
	ds := detail.Destinations[0]
	if detail.Status != "START" || detail.SourceState.State != "RUNNING" || detail.SourceState.ConfirmedLSN != "0/1A2B3C" ||
		ds.Health != "ERROR" || ds.LastError != "relation missing" || ds.LastAppliedAt == nil || !ds.LastAppliedAt.Equal(applied) {
		t.Fatalf("detail = %+v", detail)
	}
	// Lag: from the sink's progress report and the source's confirmed
	// position. No consumer exists here, so pending is unknown and the lag
	// is counted from the newest applied change.
	if err := c.store.SetDestinationProgress(ctx, configstore.DestinationProgress{PipelineID: p.ID, DestinationID: d1.ID,
		AppliedCommitLSN: "0/1A0000", AppliedCommitTime: time.Now().Add(-2 * time.Minute), Throughput: 4, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c.must(200, "GET", path, nil, &detail)
	ds = detail.Destinations[0]
	if ds.Health != "ERROR" || !strings.HasPrefix(ds.Reason, "relation missing (12") || !strings.Contains(ds.Reason, " s behind") ||
		ds.LagSeconds == nil || *ds.LagSeconds < 119 || ds.LagBytes == nil || *ds.LagBytes != 0x2B3C || ds.Pending != nil ||
		ds.Throughput != 4 || ds.AppliedCommitLSN != "0/1A0000" || ds.SourceLSN != "0/1A2B3C" || ds.AppliedCommitTime == nil {
		t.Fatalf("destination with progress = %+v", ds)
	}
	if d2s := detail.Destinations[1]; d2s.Health != "UNKNOWN" || d2s.LagSeconds != nil || d2s.LagBytes != nil {
		t.Fatalf("destination without reports = %+v", d2s)
	}
	var status listBody[pipelineDestinationStatus]
	c.must(200, "GET", "/status?limit=1", nil, &status)
	if status.Total != 2 || len(status.Items) != 1 || status.Items[0].PipelineID != p.ID || status.Items[0].PipelineName != "p" ||
		status.Items[0].DestinationID != d1.ID || status.Items[0].Health != "ERROR" || status.Items[0].Name != "d1" ||
		status.Items[0].LagBytes == nil || *status.Items[0].LagBytes != 0x2B3C {
		t.Fatalf("status page 1 = %+v", status)
	}
	c.must(200, "GET", "/status?limit=1&offset=1", nil, &status)
	if len(status.Items) != 1 || status.Items[0].DestinationID != d2.ID || status.Items[0].Health != "UNKNOWN" {
		t.Fatalf("status page 2 = %+v", status)
	}
	c.wantError("GET", "/status?limit=0", nil, 422, "limit")
	// The same numbers as Prometheus gauges; d2 (lag unknown) has none.
	m := metrics.New()
	if err := c.srv.recordLag(ctx, m); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := fmt.Sprintf("rosetta_destination_lag_bytes{destination_id=\"%d\",pipeline_id=\"%d\"} 11068\n", d1.ID, p.ID); !strings.Contains(rec.Body.String(), want) ||
		!strings.Contains(rec.Body.String(), fmt.Sprintf("rosetta_destination_lag_seconds{destination_id=\"%d\",pipeline_id=\"%d\"} 12", d1.ID, p.ID)) ||
		strings.Contains(rec.Body.String(), fmt.Sprintf("destination_id=\"%d\"", d2.ID)) {
		t.Fatalf("lag gauges:\n%s", rec.Body.String())
	}
	c.must(200, "POST", path+"/pause", nil, &p)
	if p.Status != "PAUSE" {
		t.Fatalf("after pause: %+v", p)
	}
	c.must(200, "GET", path, nil, &detail)
	if ds := detail.Destinations[0]; ds.Health != "PAUSED" || !strings.HasPrefix(ds.Reason, "the pipeline is paused") {
		t.Fatalf("destination of a paused pipeline = %+v", ds)
	}
	c.wantError("POST", "/pipelines/987654/start", nil, 404, "")

	// In use: deletes refused, naming the pipeline.
	c.wantError("DELETE", fmt.Sprintf("/sources/%d", src.ID), nil, 409, "", `used by pipeline "p"`)
	c.wantError("DELETE", fmt.Sprintf("/destinations/%d", d2.ID), nil, 409, "", `used by pipeline "p"`)

	// PUT: drop d2, change tables; status kept.
	c.must(200, "PUT", path, map[string]any{"name": "p2", "source_id": src.ID, "destination_ids": []int64{d1.ID},
		"tables": []string{"public.customers"}}, &p)
	if p.Name != "p2" || len(p.DestinationIDs) != 1 || p.Tables[0] != "public.customers" || p.Status != "PAUSE" {
		t.Fatalf("after PUT: %+v", p)
	}
	c.wantError("PUT", path, body("p2", "public.events"), 422, "tables", "no primary key")
	c.wantError("PUT", "/pipelines/987654", body("z", "public.orders"), 404, "")
	c.must(204, "DELETE", fmt.Sprintf("/destinations/%d", d2.ID), nil, nil)

	var list listBody[pipelineView]
	c.must(200, "GET", "/pipelines", nil, &list)
	if list.Total != 1 || list.Items[0].Name != "p2" {
		t.Fatalf("list = %+v", list)
	}
	c.must(204, "DELETE", path, nil, nil)
	c.wantError("GET", path, nil, 404, "")
	c.must(204, "DELETE", fmt.Sprintf("/sources/%d", src.ID), nil, nil)

	// A pipeline on a source that can no longer be reached is refused with
	// a message naming the source.
	var gone idView
	c.must(201, "POST", "/sources", c.sourceBody("gone"), &gone)
	if _, err := c.store.UpdateSource(ctx, gone.ID, configstore.SourceInput{Name: "gone", Host: c.f.pg.Host(),
		Port: testkit.FreePort(t), Database: c.f.sourceDB, User: "postgres"}); err != nil {
		t.Fatal(err)
	}
	c.wantError("POST", "/pipelines", map[string]any{"name": "z", "source_id": gone.ID, "destination_ids": []int64{d1.ID},
		"tables": []string{"public.orders"}}, 422, "source_id", `source "gone" cannot be reached`)
}

func testPagination(t *testing.T, c *client) {
	for i := 0; i < 7; i++ {
		c.must(201, "POST", "/destinations", map[string]any{"name": fmt.Sprintf("d%d", i), "type": "duckdb",
			"config": map[string]any{"path": fmt.Sprintf("/tmp/%d.duckdb", i)}}, nil)
	}
	tests := []struct {
		query      string
		wantNames  []string
		wantLimit  int
		wantOffset int
	}{
		{"", []string{"d0", "d1", "d2", "d3", "d4", "d5", "d6"}, 50, 0},
		{"?limit=3", []string{"d0", "d1", "d2"}, 3, 0},
		{"?limit=3&offset=3", []string{"d3", "d4", "d5"}, 3, 3},
		{"?limit=3&offset=6", []string{"d6"}, 3, 6},
		{"?offset=10", []string{}, 50, 10},
		{"?limit=500", []string{"d0", "d1", "d2", "d3", "d4", "d5", "d6"}, 500, 0},
	}
	for _, tt := range tests {
		var list listBody[destinationView]
		c.must(200, "GET", "/destinations"+tt.query, nil, &list)
		names := []string{}
		for _, d := range list.Items {
			names = append(names, d.Name)
		}
		if list.Total != 7 || list.Limit != tt.wantLimit || list.Offset != tt.wantOffset || strings.Join(names, ",") != strings.Join(tt.wantNames, ",") {
			t.Fatalf("GET /destinations%s = %v total %d limit %d offset %d", tt.query, names, list.Total, list.Limit, list.Offset)
		}
	}
	for _, q := range []string{"?limit=0", "?limit=501", "?limit=x", "?offset=-1"} {
		field := "limit"
		if strings.Contains(q, "offset") {
			field = "offset"
		}
		c.wantError("GET", "/destinations"+q, nil, 422, field)
		c.wantError("GET", "/sources"+q, nil, 422, field)
		c.wantError("GET", "/pipelines"+q, nil, 422, field)
	}
}

// testEvents has its own NATS server, so that the config stream holds only
// its events.
func testEvents(t *testing.T, f *fixture) {
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	c := newClient(t, f, js, nil)
	// No stream yet: the first publish creates it.
	var src, dst, p idView
	c.must(201, "POST", "/sources", c.sourceBody("s"), &src)
	c.must(200, "PUT", fmt.Sprintf("/sources/%d", src.ID), c.sourceBody("s2"), nil)
	c.must(201, "POST", "/destinations", c.pgDestBody("d"), &dst)
	c.must(200, "PUT", fmt.Sprintf("/destinations/%d", dst.ID), c.pgDestBody("d2"), nil)
	c.must(201, "POST", "/pipelines", map[string]any{"name": "p", "source_id": src.ID, "destination_ids": []int64{dst.ID}, "tables": []string{"public.orders"}}, &p)
	c.must(200, "PUT", fmt.Sprintf("/pipelines/%d", p.ID), map[string]any{"name": "p", "source_id": src.ID, "destination_ids": []int64{dst.ID}, "tables": []string{"public.orders", "public.customers"}}, nil)
	c.must(200, "POST", fmt.Sprintf("/pipelines/%d/start", p.ID), nil, nil)
	c.must(200, "POST", fmt.Sprintf("/pipelines/%d/pause", p.ID), nil, nil)
	c.must(204, "DELETE", fmt.Sprintf("/pipelines/%d", p.ID), nil, nil)
	c.must(204, "DELETE", fmt.Sprintf("/destinations/%d", dst.ID), nil, nil)
	c.must(204, "DELETE", fmt.Sprintf("/sources/%d", src.ID), nil, nil)
	// Refused changes publish nothing.
	c.wantError("DELETE", fmt.Sprintf("/sources/%d", src.ID), nil, 404, "")
	c.wantError("POST", "/sources", map[string]any{"name": "x"}, 422, "host")

	want := []contracts.ConfigEvent{
		{Kind: contracts.KindSource, ID: src.ID, Action: contracts.ActionCreated},
		{Kind: contracts.KindSource, ID: src.ID, Action: contracts.ActionUpdated},
		{Kind: contracts.KindDestination, ID: dst.ID, Action: contracts.ActionCreated},
		{Kind: contracts.KindDestination, ID: dst.ID, Action: contracts.ActionUpdated},
		{Kind: contracts.KindPipeline, ID: p.ID, Action: contracts.ActionCreated},
		{Kind: contracts.KindPipeline, ID: p.ID, Action: contracts.ActionUpdated},
		{Kind: contracts.KindPipeline, ID: p.ID, Action: contracts.ActionStarted},
		{Kind: contracts.KindPipeline, ID: p.ID, Action: contracts.ActionPaused},
		{Kind: contracts.KindPipeline, ID: p.ID, Action: contracts.ActionDeleted},
		{Kind: contracts.KindDestination, ID: dst.ID, Action: contracts.ActionDeleted},
		{Kind: contracts.KindSource, ID: src.ID, Action: contracts.ActionDeleted},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, contracts.ConfigStreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{contracts.ConfigPrefix + ".>"}})
	if err != nil {
		t.Fatalf("config stream: %v", err)
	}
	for i, w := range want {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("event %d (%+v): %v", i, w, err)
		}
		var ev contracts.ConfigEvent
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind != w.Kind || ev.ID != w.ID || ev.Action != w.Action || msg.Subject() != w.Subject() || ev.At.IsZero() {
			t.Fatalf("event %d = %+v on %s, want %+v on %s", i, ev, msg.Subject(), w, w.Subject())
		}
	}
	if msg, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond)); err == nil {
		t.Fatalf("unexpected extra event %s", msg.Data())
	}
}

func testHealth(t *testing.T, f *fixture) {
	var h healthBody
	c := newClient(t, f, f.js, nil)
	// Liveness: no token, no dependency detail.
	c.token = ""
	var live map[string]any
	c.must(200, "GET", "/health", nil, &live)
	if len(live) != 1 || live["status"] != "ok" {
		t.Fatalf("health = %v, want only status ok", live)
	}
	c.wantError("GET", "/ready", nil, 401, "", "Authorization: Bearer")
	c.token = c.mustToken("ready-viewer", apitoken.Viewer)
	c.must(200, "GET", "/ready", nil, &h)
	if h.Status != "ok" || h.Checks["config_db"].Status != "ok" || h.Checks["nats"].Status != "ok" || h.Checks["redis"].Status != "disabled" {
		t.Fatalf("health = %+v", h)
	}

	r := testkit.StartRedis(t)
	rc := redisClient(t, r)
	withRedis := newClient(t, f, f.js, RedisPinger(rc))
	withRedis.must(200, "GET", "/ready", nil, &h)
	if h.Status != "ok" || h.Checks["redis"].Status != "ok" {
		t.Fatalf("health with redis = %+v", h)
	}
	r.Kill()
	withRedis.must(503, "GET", "/ready", nil, &h)
	if h.Status != "degraded" || h.Checks["redis"].Status != "error" || h.Checks["config_db"].Status != "ok" {
		t.Fatalf("health with redis down = %+v", h)
	}

	// NATS down.
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	noNATS := newClient(t, f, js, nil)
	noNATS.srv.cfg.PublishTimeout = 500 * time.Millisecond
	n.Shutdown()
	noNATS.must(503, "GET", "/ready", nil, &h)
	if h.Status != "degraded" || h.Checks["nats"].Status != "error" {
		t.Fatalf("health with nats down = %+v", h)
	}
	// With NATS down, changes still succeed (services reconcile from the DB).
	noNATS.must(201, "POST", "/destinations", map[string]any{"name": "d", "type": "duckdb", "config": map[string]any{"path": "p"}}, nil)
	if !strings.Contains(noNATS.logs.String(), "config event not published") {
		t.Fatalf("publish failure not logged:\n%s", noNATS.logs.String())
	}

	// The config DB down: the store is closed.
	broken := newClient(t, f, f.js, nil)
	broken.store.Close()
	// The token cannot be checked: 503 either way, without detail.
	broken.wantError("GET", "/ready", nil, 503, "", "config database")
	broken.must(200, "GET", "/health", nil, nil)
}

func testListen(t *testing.T, c *client) {
	ctx := context.Background()
	if err := c.srv.Listen(ctx); err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := c.srv.Addr().String()
	resp, err := http.Get("http://" + addr + "/api/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health over TCP = %d", resp.StatusCode)
	}
	// A second server on the same address fails with a clear error.
	other, err := New(Config{Addr: addr}, c.store, c.f.js, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Listen(ctx); err == nil || !strings.Contains(err.Error(), "listen on "+addr) {
		t.Fatalf("listen on a taken port: err = %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.srv.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := http.Get("http://" + addr + "/api/v1/health"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body   string
		status int
		field  string
		msg    string
	}{
		{`{"name":"a","port":1}`, 0, "", ""},
		{`{"tables":"public.a"}`, 422, "tables", "tables must be an array of strings, not a string"},
		{`{"source_id":true}`, 422, "source_id", "source_id must be an integer, not a bool"},
		{`{"extra":1}`, 400, "extra", `unknown field "extra"`},
		{`{"name":`, 400, "", "ends too early"},
		{`{"name" "a"}`, 400, "", "invalid JSON at byte"},
		{`null`, 0, "", ""},
		{`"str"`, 400, "", "JSON object"},
	}
	for _, tt := range tests {
		var dst struct {
			Name     *string  `json:"name"`
			Port     *int     `json:"port"`
			Tables   []string `json:"tables"`
			SourceID *int64   `json:"source_id"`
		}
		err := decodeJSON([]byte(tt.body), &dst)
		if tt.status == 0 {
			if err != nil {
				t.Fatalf("%s: %v", tt.body, err)
			}
			continue
		}
		ae, ok := err.(*apiError)
		if !ok || ae.status != tt.status || ae.field != tt.field || !strings.Contains(ae.msg, tt.msg) {
			t.Fatalf("%s: err = %#v, want %d %q %q", tt.body, err, tt.status, tt.field, tt.msg)
		}
	}
}

// The config stream is created by Listen when NATS is up.
func TestListenEnsuresConfigStream(t *testing.T) {
	t.Parallel()
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	pg := testkit.StartPostgres(t)
	f := &fixture{pg: pg, js: js}
	c := newClient(t, f, js, nil)
	ctx := context.Background()
	if err := c.srv.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.srv.Shutdown(ctx)
	if _, err := js.Stream(ctx, contracts.ConfigStreamName); err != nil {
		t.Fatalf("config stream after Listen: %v", err)
	}
	// Idempotent alongside natsx.
	if err := natsx.EnsureConfigStream(ctx, js); err != nil {
		t.Fatal(err)
	}
}

// testPartitions: a source's partitions default to 1, may be set on create
// and changed while it has no pipelines, and a change is refused with a
// 409 saying why and what to do once it has one.
func testPartitions(t *testing.T, c *client) {
	var src sourceView
	c.must(201, "POST", "/sources", c.sourceBody("parts-default"), &src)
	if src.Partitions != 1 {
		t.Fatalf("default partitions = %d, want 1", src.Partitions)
	}
	body := c.sourceBody("parts")
	body["partitions"] = 4
	c.must(201, "POST", "/sources", body, &src)
	if src.Partitions != 4 {
		t.Fatalf("created with partitions = %d, want 4", src.Partitions)
	}
	path := fmt.Sprintf("/sources/%d", src.ID)
	put := func(partitions any) map[string]any {
		b := c.sourceBody("parts")
		delete(b, "password")
		if partitions != nil {
			b["partitions"] = partitions
		}
		return b
	}
	c.must(200, "PUT", path, put(8), &src)
	if src.Partitions != 8 {
		t.Fatalf("without pipelines, PUT partitions 8 gave %d", src.Partitions)
	}

	var d idView
	c.must(201, "POST", "/destinations", c.pgDestBody("parts-dest"), &d)
	var p idView
	c.must(201, "POST", "/pipelines", map[string]any{"name": "parts-p", "source_id": src.ID,
		"destination_ids": []int64{d.ID}, "tables": []string{"public.orders"}}, &p)

	c.wantError("PUT", path, put(2), 409, "partitions", "cannot change partitions from 8 to 2",
		"parts-p", "no longer arrive in order", "delete and re-create its pipelines", "create a new source")
	// The same count, or none, is no change.
	c.must(200, "PUT", path, put(8), &src)
	c.must(200, "PUT", path, put(nil), &src)
	if src.Partitions != 8 {
		t.Fatalf("after refused and unchanged PUTs, partitions = %d, want 8", src.Partitions)
	}
	c.must(204, "DELETE", fmt.Sprintf("/pipelines/%d", p.ID), nil, nil)
	c.must(200, "PUT", path, put(2), &src)
	if src.Partitions != 2 {
		t.Fatalf("after the pipeline was deleted, partitions = %d, want 2", src.Partitions)
	}
}
