package settings

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretFromFile(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("file-held-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "variable", env: map[string]string{EnvSecretKey: "env-held-key-0123456789"}, want: "env-held-key-0123456789"},
		{name: "file, newline trimmed", env: map[string]string{EnvSecretKey + "_FILE": keyFile}, want: "file-held-key-0123456789"},
		{name: "both", env: map[string]string{EnvSecretKey: "x", EnvSecretKey + "_FILE": keyFile}, wantErr: "both set"},
		{name: "missing file", env: map[string]string{EnvSecretKey + "_FILE": filepath.Join(dir, "nope")}, wantErr: EnvSecretKey + "_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			s, err := Load()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load: err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || s.SecretKey != tc.want {
				t.Fatalf("SecretKey = %q, %v; want %q", s.SecretKey, err, tc.want)
			}
		})
	}
}

// TestDevKeyOnlyOnLoopback: the public development key seals secrets only
// in `rosetta dev` with every listener on loopback.
func TestDevKeyOnlyOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		name              string
		dev               bool
		key, http, nats   string
		natsURL           string
		wantDevKey, okErr bool
	}{
		{name: "dev on loopback", dev: true, http: "127.0.0.1:8080", nats: "127.0.0.1:4223", wantDevKey: true, okErr: true},
		{name: "dev on localhost and ::1", dev: true, http: "localhost:8080", nats: "[::1]:4223", wantDevKey: true, okErr: true},
		{name: "dev, API on every interface", dev: true, http: ":8080", nats: "127.0.0.1:4223"},
		{name: "dev, NATS on a LAN address", dev: true, http: "127.0.0.1:8080", nats: "10.0.0.5:4223"},
		{name: "dev, external NATS: its listen address is unused", dev: true, http: "127.0.0.1:8080", nats: "0.0.0.0:4223", natsURL: "nats://n:4222", wantDevKey: true, okErr: true},
		{name: "dev with a real key anywhere", dev: true, key: "a-real-key-0123456789", http: "0.0.0.0:8080", nats: "0.0.0.0:4223", natsURL: "nats://n:4222", okErr: true},
		{name: "not dev, dev key given", key: DevSecretKey, http: "127.0.0.1:8080", nats: "127.0.0.1:4223"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Default()
			s.Dev, s.SecretKey, s.HTTPAddr, s.EmbeddedNATSAddr, s.NATSURL = tc.dev, tc.key, tc.http, tc.nats, tc.natsURL
			used, err := s.Validate()
			if (err == nil) != tc.okErr {
				t.Fatalf("Validate: err = %v, want ok=%v", err, tc.okErr)
			}
			if used != tc.wantDevKey && tc.okErr {
				t.Fatalf("used dev key = %v, want %v", used, tc.wantDevKey)
			}
		})
	}
}

// TestEmbeddedNATSOffLoopbackNeedsTLS: the embedded server listens beyond
// loopback only with a certificate.
func TestEmbeddedNATSOffLoopbackNeedsTLS(t *testing.T) {
	for _, tc := range []struct {
		name, addr, cert, key string
		ok                    bool
	}{
		{name: "loopback", addr: "127.0.0.1:4223", ok: true},
		{name: "all interfaces without TLS", addr: "0.0.0.0:4223"},
		{name: "all interfaces with TLS", addr: "0.0.0.0:4223", cert: "c.pem", key: "k.pem", ok: true},
		{name: "cert without key", addr: "127.0.0.1:4223", cert: "c.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Default()
			s.SecretKey = "a-real-key-0123456789"
			s.EmbeddedNATSAddr, s.EmbeddedNATSTLSCert, s.EmbeddedNATSTLSKey = tc.addr, tc.cert, tc.key
			_, err := s.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate: err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
