package fakesnowflake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// StartWithKeyPair runs a fake over TLS (Config.TLS) for account where
// user logs in with a new 2048-bit key pair, stops it when t ends, and
// returns the server and the user's private key, also as unencrypted
// PKCS#8 PEM (the form a Rosetta snowflake destination's private_key
// takes). Clients trust CAFile (tls_ca_file) or use ClientTransport.
func StartWithKeyPair(t testing.TB, account, user string) (*Server, *rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(account)
	cfg.Users = []User{{Name: user, PublicKeys: []*rsa.PublicKey{&key.PublicKey}}}
	cfg.StageDir = t.TempDir()
	cfg.TLS = true
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("new fake snowflake: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start fake snowflake: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, key, PEMPKCS8(t, key)
}

// PEMPKCS8 encodes key as an unencrypted PKCS#8 PEM block.
func PEMPKCS8(t testing.TB, key *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// CAFile writes CAPEM to a file in a temporary directory of t and returns
// its path, for a destination's tls_ca_file.
func (s *Server) CAFile(t testing.TB) string {
	t.Helper()
	if s.ca == nil {
		t.Fatal("fakesnowflake: CAFile of a server without Config.TLS")
	}
	path := filepath.Join(t.TempDir(), "fakesnowflake-ca.pem")
	if err := os.WriteFile(path, s.ca.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
