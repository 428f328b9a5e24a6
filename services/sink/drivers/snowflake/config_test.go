package snowflake

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// Factory has the shape of sink.DriverFactory (not imported: the sink
// package imports the drivers).
var _ func(context.Context, json.RawMessage, *slog.Logger) (sinkrunner.Driver, error) = Factory

func TestParseConfig(t *testing.T) {
	t.Parallel()
	key := pemPKCS8(t, testKeys()[0])
	base := func(extra string) json.RawMessage {
		k, _ := json.Marshal(key)
		return json.RawMessage(`{"account":"myorg-acct","user":"LOADER","database":"raw","schema":"\"Cdc Data\"","private_key":` + string(k) + extra + `}`)
	}
	cfg, err := ParseConfig(base(`,"name":"ignored","port":"8443","soft_delete":"true"`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Protocol != "https" || cfg.Port != 8443 || !cfg.SoftDelete || cfg.database != "RAW" || cfg.schema != "Cdc Data" ||
		cfg.DroppedColumns != DroppedKeep {
		t.Errorf("parsed config = %+v", cfg)
	}
	if cfg, err := ParseConfig(base(`,"dropped_columns":"drop"`)); err != nil || cfg.DroppedColumns != DroppedDrop {
		t.Errorf("dropped_columns drop: %+v, %v", cfg, err)
	}
	sc, err := cfg.driverConfig(testKeys()[0])
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 gosnowflake 1.19 has no other switch for client telemetry; Rosetta sends none
	if sc.Authenticator.String() != "SNOWFLAKE_JWT" || sc.PrivateKey == nil || !sc.DisableTelemetry || sc.Database != "raw" {
		t.Errorf("gosnowflake config = %+v", sc)
	}
	tests := []struct{ raw, want string }{
		{`{"user":"u","database":"d","schema":"s","private_key_path":"/k"}`, "account is empty"},
		{`{"account":"a","database":"d","schema":"s","private_key_path":"/k"}`, "user is empty"},
		{`{"account":"a","user":"u","schema":"s","private_key_path":"/k"}`, "database is empty"},
		{`{"account":"a","user":"u","database":"d","schema":"my-schema","private_key_path":"/k"}`, `write it in double quotes`},
		{`{"account":"a","user":"u","database":"d","schema":"s"}`, "private_key (the PEM text) or private_key_path"},
		{`{"account":"a","user":"u","database":"d","schema":"s","private_key":"x","private_key_path":"/k"}`, "not both"},
		{`{"account":"a","user":"u","database":"d","schema":"s","private_key_path":"/k","port":70000}`, "out of range"},
		{`{"account":"a","user":"u","database":"d","schema":"s","private_key_path":"/k","port":"x"}`, "not an integer"},
		{`{"account":"a","user":"u","database":"d","schema":"s","private_key_path":"/k","protocol":"ftp"}`, "not https or http"},
		{`{"account":"a","user":"u","database":"d","schema":"s","private_key_path":"/k","soft_delete":"maybe"}`, "not true or false"},
		{`{"account":"a","user":"u","database":"d","schema":"s","private_key_path":"/k","dropped_columns":"NULL"}`, `dropped_columns "NULL" is not one of keep, drop`},
		{`{"account":"a","user":"u","database":"d","schema":"s","private_key_path":"/nonexistent/k.p8"}`, "read private_key_path"},
		{`{"account":"a","user":"u","database":"d","schema":"s","private_key":"not pem"}`, "private_key is not a PEM private key"},
		{`[]`, "decode"},
	}
	for _, tt := range tests {
		_, err := ParseConfig(json.RawMessage(tt.raw))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseConfig(%s) = %v, want error containing %q", tt.raw, err, tt.want)
		}
	}
}

func TestPrivateKeyErrors(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, _ := x509.MarshalPKCS8PrivateKey(small)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testKeys()[0])})
	legacy := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: []byte{1}})
	tests := []struct {
		pem  []byte
		want string
	}{
		{pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: smallDER}), "1024-bit RSA key; Snowflake needs at least 2048"},
		{pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), "needs an RSA key"},
		{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), `holds a PEM "CERTIFICATE" block`},
		{pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), "parse private key"},
		{legacy, "legacy OpenSSL PEM encryption"},
	}
	for _, tt := range tests {
		_, err := parsePrivateKey(tt.pem, nil, "private_key")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parsePrivateKey(%.40q) = %v, want error containing %q", tt.pem, err, tt.want)
		}
	}
	if k, err := parsePrivateKey(pkcs1, nil, "private_key"); err != nil || !k.Equal(testKeys()[0]) {
		t.Errorf("PKCS#1 key: %v", err)
	}
}

func TestLogValueHidesSecrets(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k.p8")
	writeFile(t, path, pemPKCS8(t, testKeys()[0]))
	cfg := Config{Account: "a", User: "u", Database: "d", Schema: "s", PrivateKey: "-----BEGIN PRIVATE KEY-----\nMIIsecret",
		PrivateKeyPassphrase: "pass-secret", PrivateKeyPath: path}
	got := fmt.Sprint(slog.AnyValue(cfg).Resolve())
	if strings.Contains(got, "secret") || !strings.Contains(got, "private_key_set=true") || !strings.Contains(got, path) ||
		!strings.Contains(got, "dropped_columns=") {
		t.Errorf("LogValue = %s", got)
	}
}
