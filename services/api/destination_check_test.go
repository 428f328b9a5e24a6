package api

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sf "github.com/snowflakedb/gosnowflake"
	"github.com/youmark/pkcs8"

	"github.com/rosettacdc/rosetta/pkg/destcheck"
	"github.com/rosettacdc/rosetta/pkg/testkit/fakesnowflake"
	"github.com/rosettacdc/rosetta/services/sink/drivers/snowflake"
)

func TestMain(m *testing.M) {
	// Keep gosnowflake offline (docs/snowflake.md): no probing of cloud
	// metadata endpoints, no native minicore library, no error logs for
	// the logins the tests fail on purpose.
	os.Setenv("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", "true")
	os.Setenv("SF_DISABLE_MINICORE", "true")
	if err := sf.GetLogger().SetLogLevel("fatal"); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// testSnowflakeCheck runs POST and PUT /destinations of snowflake
// destinations against a fake Snowflake, with the driver's checker wired
// in as the composition root does.
func testSnowflakeCheck(t *testing.T, c *client) {
	c.srv.cfg.DestinationCheckers = DestinationCheckers{"snowflake": DestinationCheckFunc(snowflake.Check)}
	c.srv.cfg.CheckTimeout = 5 * time.Second

	keys := make([]*rsa.PrivateKey, 2)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	plain := func(k *rsa.PrivateKey) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	const keyPassphrase = "Snow-Passphrase-never-shown"
	der, err := pkcs8.MarshalPrivateKey(keys[0], []byte(keyPassphrase), nil)
	if err != nil {
		t.Fatal(err)
	}
	encrypted := string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}))
	// No answer may show key material: a body line of each PEM, the passphrase.
	secrets := []string{keyPassphrase, strings.Split(encrypted, "\n")[1], strings.Split(plain(keys[0]), "\n")[1], strings.Split(plain(keys[1]), "\n")[1]}

	cfg := fakesnowflake.DefaultConfig("TESTACCT")
	cfg.Users = []fakesnowflake.User{{Name: "LOADER", PublicKeys: []*rsa.PublicKey{&keys[0].PublicKey}}}
	cfg.StageDir = t.TempDir()
	cfg.TLS = true
	srv, err := fakesnowflake.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	other, err := fakesnowflake.New(cfg) // another CA
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	// CA files, like key files, are accepted only inside ROSETTA_KEYS_DIR.
	keysDir := t.TempDir()
	c.srv.cfg.KeysDir = keysDir
	n := 0
	caFile := func(s *fakesnowflake.Server) string {
		n++
		path := filepath.Join(keysDir, fmt.Sprintf("ca%d.pem", n))
		if err := os.WriteFile(path, s.CAPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rightCA, wrongCA := caFile(srv), caFile(other)

	body := func(name string, extra map[string]any) map[string]any {
		config := map[string]any{"account": "TESTACCT", "user": "loader", "database": "ROSETTA", "schema": "PUBLIC",
			"private_key": plain(keys[0]), "host": srv.Host(), "port": srv.Port(), "protocol": "https", "tls_ca_file": rightCA}
		for k, v := range extra {
			if v == nil {
				delete(config, k)
				continue
			}
			config[k] = v
		}
		return map[string]any{"name": name, "type": "snowflake", "config": config}
	}
	wantError := func(method, path string, b map[string]any, field string, words ...string) {
		t.Helper()
		code, raw := c.do(method, path, b)
		for _, s := range secrets {
			if strings.Contains(string(raw), s) {
				t.Fatalf("%s %s: the answer shows key material: %s", method, path, raw)
			}
		}
		if code != 422 {
			t.Fatalf("%s %s: status %d, want 422: %s", method, path, code, raw)
		}
		c.wantError(method, path, b, 422, field, words...)
	}

	var ok destinationView
	c.must(201, "POST", "/destinations", body("snow-ok", nil), &ok)
	c.must(201, "POST", "/destinations", body("snow-encrypted", map[string]any{
		"private_key": encrypted, "private_key_passphrase": keyPassphrase}), nil)

	wantError("POST", "/destinations", body("snow-wrong-key", map[string]any{"private_key": plain(keys[1])}),
		"config.private_key", "rejected the key-pair login of user loader on account TESTACCT", "fingerprint SHA256:", "ALTER USER", "RSA_PUBLIC_KEY")
	wantError("POST", "/destinations", body("snow-wrong-passphrase", map[string]any{
		"private_key": encrypted, "private_key_passphrase": "not the passphrase"}),
		"config.private_key_passphrase", "private_key_passphrase does not decrypt private_key")
	wantError("POST", "/destinations", body("snow-no-passphrase", map[string]any{"private_key": encrypted}),
		"config.private_key_passphrase", "set private_key_passphrase")
	wantError("POST", "/destinations", body("snow-not-pem", map[string]any{"private_key": "not a key"}),
		"config.private_key", "not a PEM private key")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	wantError("POST", "/destinations", body("snow-unreachable", map[string]any{"port": closed}),
		"config.host", "could not reach snowflake")
	wantError("POST", "/destinations", body("snow-wrong-ca", map[string]any{"tls_ca_file": wrongCA}),
		"config.tls_ca_file", "does not trust")
	// Plain HTTP is refused unless asked for by name.
	wantError("POST", "/destinations", body("snow-http", map[string]any{"protocol": "http", "tls_ca_file": nil}),
		"config.insecure_http", "unencrypted")

	// PUT: the stored key is used when none is sent; a new key is checked.
	path := fmt.Sprintf("/destinations/%d", ok.ID)
	c.must(200, "PUT", path, body("snow-ok", map[string]any{"private_key": nil, "warehouse": "OTHER_WH"}), nil)
	wantError("PUT", path, body("snow-ok", map[string]any{"private_key": plain(keys[1])}), "config.private_key", "RSA_PUBLIC_KEY")
	// Another user with the stored key: refused before any login (the
	// key stays bound to where it was given).
	wantError("PUT", path, body("snow-ok", map[string]any{"private_key": nil, "user": "nobody"}), "config.private_key", "config.user changed")
	// A key on the sink's host is left to the sink, inside ROSETTA_KEYS_DIR.
	c.must(200, "PUT", path, body("snow-ok", map[string]any{"private_key": "", "private_key_path": filepath.Join(keysDir, "rsa_key.p8")}), nil)

	// The live check of a stored destination: every step and type passes.
	c.srv.cfg.LiveCheckers = DestinationLiveCheckers{"snowflake": func(ctx context.Context, raw json.RawMessage) destcheck.Report {
		return snowflake.LiveCheck(ctx, raw, slog.New(slog.DiscardHandler))
	}}
	c.must(200, "PUT", path, body("snow-ok", nil), nil) // the key back in the config, not on the sink's host
	var live LiveCheckView
	c.must(200, "POST", path+"/check-live", nil, &live)
	types := 0
	for _, r := range live.Results {
		if !r.OK {
			t.Errorf("check-live %s failed: %s", r.Check, r.Detail)
		}
		if strings.HasPrefix(r.Check, "type ") {
			types++
		}
	}
	if !live.OK || live.Name != "snow-ok" || types < 20 {
		t.Fatalf("check-live = ok %v, %s, %d type results; want ok with every type", live.OK, live.Name, types)
	}
	// A failing MERGE is a failed step in a 200 answer.
	srv.FailNext("MERGE", 1)
	c.must(200, "POST", path+"/check-live", nil, &live)
	failed := ""
	for _, r := range live.Results {
		if !r.OK {
			failed += r.Check + ";"
		}
	}
	if live.OK || !strings.Contains(failed, "apply") {
		t.Fatalf("check-live with a failing MERGE = ok %v, failed %q; want apply failed", live.OK, failed)
	}
	c.wantError("POST", "/destinations/999999/check-live", nil, 404, "", "does not exist")
	var duck destinationView
	c.must(201, "POST", "/destinations", map[string]any{"name": "duck-live", "type": "duckdb", "config": map[string]any{"path": "x.duckdb"}}, &duck)
	c.wantError("POST", fmt.Sprintf("/destinations/%d/check-live", duck.ID), nil, 422, "", "snowflake destinations only")
	c.must(204, "DELETE", fmt.Sprintf("/destinations/%d", duck.ID), nil, nil)

	var list listBody[destinationView]
	c.must(200, "GET", "/destinations", nil, &list)
	if list.Total != 2 {
		t.Fatalf("%d destinations stored, want the 2 that passed the check", list.Total)
	}
}
