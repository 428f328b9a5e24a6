package api

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	sf "github.com/snowflakedb/gosnowflake"
	"github.com/youmark/pkcs8"

	"github.com/rosettacdc/rosetta/pkg/fakesnowflake"
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
	srv, err := fakesnowflake.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	body := func(name string, extra map[string]any) map[string]any {
		config := map[string]any{"account": "TESTACCT", "user": "loader", "database": "ROSETTA", "schema": "PUBLIC",
			"private_key": plain(keys[0]), "host": srv.Host(), "port": srv.Port(), "protocol": "http"}
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

	// PUT: the stored key is used when none is sent; a new key is checked.
	path := fmt.Sprintf("/destinations/%d", ok.ID)
	c.must(200, "PUT", path, body("snow-ok", map[string]any{"private_key": nil, "warehouse": "OTHER_WH"}), nil)
	wantError("PUT", path, body("snow-ok", map[string]any{"private_key": plain(keys[1])}), "config.private_key", "RSA_PUBLIC_KEY")
	// Another user with the stored key: refused before any login (the
	// key stays bound to where it was given).
	wantError("PUT", path, body("snow-ok", map[string]any{"private_key": nil, "user": "nobody"}), "config.private_key", "config.user changed")
	// A key on the sink's host is left to the sink, inside ROSETTA_KEYS_DIR.
	c.srv.cfg.KeysDir = "/etc/rosetta"
	c.must(200, "PUT", path, body("snow-ok", map[string]any{"private_key": "", "private_key_path": "/etc/rosetta/rsa_key.p8"}), nil)

	var list listBody[destinationView]
	c.must(200, "GET", "/destinations", nil, &list)
	if list.Total != 2 {
		t.Fatalf("%d destinations stored, want the 2 that passed the check", list.Total)
	}
}
