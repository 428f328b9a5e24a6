package fakesnowflake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// StartWithKeyPair runs a fake for account where user logs in with a new
// 2048-bit key pair, stops it when t ends, and returns the server and the
// user's private key, also as unencrypted PKCS#8 PEM (the form a Rosetta
// snowflake destination's private_key takes).
func StartWithKeyPair(t testing.TB, account, user string) (*Server, *rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(account)
	cfg.Users = []User{{Name: user, PublicKeys: []*rsa.PublicKey{&key.PublicKey}}}
	cfg.StageDir = t.TempDir()
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
