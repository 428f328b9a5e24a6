package fakesnowflake

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"os"
	"sync"
	"testing"
	"time"

	sf "github.com/snowflakedb/gosnowflake"
)

const (
	testAccount = "TESTACCT"
	testUser    = "LOADER"
)

func TestMain(m *testing.M) {
	// Keep the driver offline: no cloud metadata probing, no native minicore.
	os.Setenv("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", "true")
	os.Setenv("SF_DISABLE_MINICORE", "true")
	// The driver logs every failed statement at error level; the tests expect failures.
	if err := sf.GetLogger().SetLogLevel("fatal"); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// keys are generated once: 2048-bit RSA generation is slow under -race.
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

// startServer runs a fake with testUser registered for the first test key.
func startServer(t *testing.T) *Server {
	t.Helper()
	cfg := DefaultConfig(testAccount)
	cfg.Users = []User{{Name: testUser, PublicKeys: []*rsa.PublicKey{&testKeys()[0].PublicKey}}}
	cfg.StageDir = t.TempDir()
	cfg.TLS = true // the fake's own suite speaks HTTPS too
	srv, err := New(cfg)
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

// driverConfig is how a Rosetta destination would configure gosnowflake offline.
func driverConfig(srv *Server, user string, key *rsa.PrivateKey) sf.Config {
	return sf.Config{
		Account:       testAccount,
		User:          user,
		Authenticator: sf.AuthTypeJwt,
		PrivateKey:    key,
		Host:          srv.Host(),
		Port:          srv.Port(),
		Protocol:      srv.Protocol(),
		Transporter:   srv.ClientTransport(),
		//lint:ignore SA1019 gosnowflake 1.19 has no other switch for client telemetry; Rosetta sends none
		DisableTelemetry: true,
		Database:         "ROSETTA",
		Schema:           "PUBLIC",
		Warehouse:        "LOAD_WH",
		Role:             "LOADER_ROLE",
		MaxRetryCount:    1,
	}
}

// openDB opens a database/sql handle through the real driver.
func openDB(t *testing.T, srv *Server, user string, key *rsa.PrivateKey) *sql.DB {
	t.Helper()
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, driverConfig(srv, user, key)))
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// conn pins one session, which temp tables and transactions need.
func conn(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(testContext(t))
	if err != nil {
		t.Fatalf("connect through gosnowflake: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustExec(t *testing.T, c *sql.Conn, q string, args ...any) sql.Result {
	t.Helper()
	res, err := c.ExecContext(testContext(t), q, args...)
	if err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
	return res
}
