package snowflake

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/testkit/fakesnowflake"
)

func TestMain(m *testing.M) {
	// Keep gosnowflake offline in tests (docs/snowflake.md): no probing of
	// cloud metadata endpoints, no native minicore library. Set here rather
	// than with t.Setenv, which parallel tests cannot use, and rather than by
	// the driver, which must not change its process's environment.
	os.Setenv("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", "true")
	os.Setenv("SF_DISABLE_MINICORE", "true")
	// gosnowflake logs every failed statement at error level through its
	// own global logger; several tests fail statements on purpose.
	if err := sf.GetLogger().SetLogLevel("fatal"); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

const (
	testAccount = "TESTACCT"
	testUser    = "LOADER"
)

// testKeys are generated once: 2048-bit RSA generation is slow under -race.
var testKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var out [2]*rsa.PrivateKey
	for i := range out {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		out[i] = k
	}
	return out
})

func pemPKCS8(t testing.TB, key *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// hostileParams are user-level parameters that change what the driver's
// statements mean unless it pins its own (sessionParams): every driver test
// runs with them.
var hostileParams = map[string]string{
	"TIMESTAMP_INPUT_FORMAT":          "DD/MM/YYYY HH24:MI:SS",
	"DATE_INPUT_FORMAT":               "DD/MM/YYYY",
	"TIME_INPUT_FORMAT":               "HH12:MI AM",
	"QUOTED_IDENTIFIERS_IGNORE_CASE":  "TRUE",
	"ERROR_ON_NONDETERMINISTIC_MERGE": "FALSE",
	"STATEMENT_TIMEOUT_IN_SECONDS":    "30",
	"LOCK_TIMEOUT":                    "0",
	"QUERY_TAG":                       "someone-else",
}

// startFake runs a fake Snowflake where testUser logs in with the first
// test key, with hostileParams as its user-level parameters.
func startFake(t testing.TB) *fakesnowflake.Server {
	t.Helper()
	cfg := fakesnowflake.DefaultConfig(testAccount)
	cfg.Users = []fakesnowflake.User{{Name: testUser, PublicKeys: []*rsa.PublicKey{&testKeys()[0].PublicKey}, Parameters: hostileParams}}
	cfg.StageDir = t.TempDir()
	cfg.TLS = true // every driver test speaks HTTPS, trusting the fake's CA (tls_ca_file)
	srv, err := fakesnowflake.New(cfg)
	if err != nil {
		t.Fatalf("new fake snowflake: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start fake snowflake: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close fake snowflake: %v", err)
		}
	})
	return srv
}

// fakeConfig is the destination config (as the API stores it) pointing at
// srv, with extra fields merged in.
func fakeConfig(t testing.TB, srv *fakesnowflake.Server, extra map[string]any) json.RawMessage {
	t.Helper()
	m := map[string]any{
		"account": testAccount, "user": strings.ToLower(testUser), "database": "rosetta", "schema": "public",
		"warehouse": "load_wh", "role": "loader_role",
		"private_key": pemPKCS8(t, testKeys()[0]),
		"host":        srv.Host(), "port": srv.Port(), "protocol": srv.Protocol(),
	}
	if ca := srv.CAPEM(); ca != nil {
		m["tls_ca_file"] = writeCA(t, ca)
	} else {
		m["insecure_http"] = true
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func parseTestConfig(t testing.TB, raw json.RawMessage) Config {
	t.Helper()
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	cfg.LoginTimeout = 10 * time.Second
	cfg.MaxRetryCount = 1
	return cfg
}

// env is one driver on its own fake Snowflake, and a second session that
// reads the destination back through gosnowflake.
type env struct {
	t   *testing.T
	srv *fakesnowflake.Server
	drv *Driver
	rd  *sql.DB
}

func newEnv(t *testing.T, extra map[string]any) *env {
	t.Helper()
	srv := startFake(t)
	d := New(parseTestConfig(t, fakeConfig(t, srv, extra)), quietLog())
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close driver: %v", err)
		}
	})
	return &env{t: t, srv: srv, drv: d, rd: openReader(t, srv)}
}

// openReader opens a plain gosnowflake handle on srv as testUser.
func openReader(t testing.TB, srv *fakesnowflake.Server) *sql.DB {
	t.Helper()
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, sf.Config{
		Account: testAccount, User: testUser, Authenticator: sf.AuthTypeJwt, PrivateKey: testKeys()[0],
		//lint:ignore SA1019 gosnowflake 1.19 has no other switch for client telemetry; Rosetta sends none
		Host: srv.Host(), Port: srv.Port(), Protocol: srv.Protocol(), DisableTelemetry: true, Transporter: fakeTransport(t, srv),
		Database: "ROSETTA", Schema: "PUBLIC", MaxRetryCount: 1,
		Params: sessionParamMap(), // the reader checks results, under the driver's settings
	}))
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// writeCA writes a CA certificate to a file, for tls_ca_file.
func writeCA(t testing.TB, pem []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeTransport is the HTTP transport a reader uses for srv: one trusting
// its CA, as the driver's tls_ca_file makes; nil (gosnowflake's own) for
// plain HTTP.
func fakeTransport(t testing.TB, srv *fakesnowflake.Server) http.RoundTripper {
	t.Helper()
	if srv.CAPEM() == nil {
		return nil
	}
	tr, err := Config{TLSCAFile: writeCA(t, srv.CAPEM())}.transport()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// apply collapses changes into one batch and applies it.
func (e *env) apply(changes ...contracts.Change) error {
	e.t.Helper()
	batches, err := cdc.Collapse(changes)
	if err != nil {
		e.t.Fatalf("collapse: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return e.drv.Apply(ctx, batches)
}

func (e *env) mustApply(changes ...contracts.Change) {
	e.t.Helper()
	if err := e.apply(changes...); err != nil {
		e.t.Fatalf("apply: %v", err)
	}
}

// rows returns query's rows read through gosnowflake, each as its columns'
// text joined by "|", NULL as <null>.
func (e *env) rows(query string) []string {
	e.t.Helper()
	return queryRows(e.t, e.rd, query)
}

func queryRows(t testing.TB, db *sql.DB, query string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := db.QueryContext(ctx, query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatalf("scan %s: %v", query, err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = v.String
			if !v.Valid {
				parts[i] = "<null>"
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

func (e *env) expect(query string, want ...string) {
	e.t.Helper()
	got := e.rows(query)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		e.t.Errorf("%s\n got %q\nwant %q", query, got, want)
	}
}

// itemCols and ev are the shared driver-test table and event builder.
var itemCols = cdctest.ItemColumns

type ev = cdctest.Events
