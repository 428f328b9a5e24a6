package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/pkg/testkit/fakesnowflake"
)

// TestCheckDestinationCommand runs `rosetta check-destination` on a
// stored snowflake destination pointing at a fake Snowflake over TLS:
// every step and type passes and the table prints; a failing MERGE makes
// it exit with an error and show the failed step; a duckdb destination is
// refused with a clear message.
func TestCheckDestinationCommand(t *testing.T) {
	// gosnowflake stays offline (docs/snowflake.md).
	t.Setenv("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", "true")
	t.Setenv("SF_DISABLE_MINICORE", "true")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	fcfg := fakesnowflake.DefaultConfig("TESTACCT")
	fcfg.Users = []fakesnowflake.User{{Name: "LOADER", PublicKeys: []*rsa.PublicKey{&key.PublicKey}}}
	fcfg.StageDir = t.TempDir()
	fcfg.TLS = true
	srv, err := fakesnowflake.New(fcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, srv.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}

	pg := testkit.StartPostgres(t)
	cfgDB := pg.CreateDatabase(t, "cfg")
	const secretKey = "check-destination-test-key-0123456789"
	t.Setenv("ROSETTA_CONFIG_DSN", pg.DSN(cfgDB))
	t.Setenv("ROSETTA_SECRET_KEY", secretKey)
	ctx := context.Background()
	box, err := secrets.NewBox(secretKey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := configstore.Open(ctx, pg.DSN(cfgDB), box)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	snow, err := st.CreateDestination(ctx, configstore.DestinationInput{Name: "snow", Type: "snowflake", Config: map[string]any{
		"account": "TESTACCT", "user": "loader", "database": "ROSETTA", "schema": "PUBLIC",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"host":        srv.Host(), "port": srv.Port(), "protocol": "https", "tls_ca_file": caFile,
	}})
	if err != nil {
		t.Fatal(err)
	}
	duck, err := st.CreateDestination(ctx, configstore.DestinationInput{Name: "duck", Type: "duckdb", Config: map[string]any{"path": "x.duckdb"}})
	if err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	if err := run([]string{"check-destination", "snow"}, &out, &errb); err != nil {
		t.Fatalf("check-destination: %v\n%s\n%s", err, out.String(), errb.String())
	}
	for _, want := range []string{"login", "stage PUT", "apply", "type timestamp with time zone", "type bytea", "drop table"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output has no %q line:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "FAIL") {
		t.Errorf("a step failed:\n%s", out.String())
	}

	srv.FailNext("MERGE", 1)
	out.Reset()
	err = run([]string{"check-destination", strconv.FormatInt(snow.ID, 10)}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "failed") || !regexp.MustCompile(`(?m)^apply +FAIL +batch 1 of 2`).MatchString(out.String()) {
		t.Fatalf("check-destination with a failing MERGE = %v, want an error and a failed apply:\n%s", err, out.String())
	}

	err = run([]string{"check-destination", strconv.FormatInt(duck.ID, 10)}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "snowflake destinations only") {
		t.Fatalf("check-destination on duckdb = %v, want a refusal naming snowflake", err)
	}
}
