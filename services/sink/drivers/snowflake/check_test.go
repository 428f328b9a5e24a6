package snowflake

import (
	"context"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/youmark/pkcs8"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	srv := startFake(t)
	der, err := pkcs8.MarshalPrivateKey(testKeys()[0], []byte("right passphrase"), nil)
	if err != nil {
		t.Fatal(err)
	}
	encrypted := string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	for _, tc := range []struct {
		name  string
		extra map[string]any
		field string // "" with words == nil: no error
		words []string
	}{
		{name: "right key"},
		{name: "right encrypted key", extra: map[string]any{"private_key": encrypted, "private_key_passphrase": "right passphrase"}},
		{name: "key path not checked", extra: map[string]any{"private_key": nil, "private_key_path": "/on/the/sink/host.p8"}},
		{name: "unregistered key", extra: map[string]any{"private_key": pemPKCS8(t, testKeys()[1])}, field: "private_key",
			words: []string{"rejected", "user loader", "account " + testAccount, "fingerprint SHA256:", "ALTER USER", "RSA_PUBLIC_KEY"}},
		{name: "unknown user", extra: map[string]any{"user": "nobody"}, field: "user", words: []string{"user nobody", "RSA_PUBLIC_KEY"}},
		{name: "wrong passphrase", extra: map[string]any{"private_key": encrypted, "private_key_passphrase": "wrong"}, field: "private_key_passphrase",
			words: []string{"private_key_passphrase does not decrypt private_key"}},
		{name: "no passphrase", extra: map[string]any{"private_key": encrypted}, field: "private_key_passphrase", words: []string{"set private_key_passphrase"}},
		{name: "not PEM", extra: map[string]any{"private_key": "ssh-rsa AAAA"}, field: "private_key", words: []string{"not a PEM private key"}},
		{name: "unreachable", extra: map[string]any{"port": closedPort}, field: "host", words: []string{"could not reach snowflake", "https://127.0.0.1:"}},
		{name: "bad config", extra: map[string]any{"account": ""}, words: []string{"account is empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err := Check(ctx, fakeConfig(t, srv, tc.extra))
			if tc.words == nil {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			t.Logf("%v", err)
			var ce *CheckError
			if !errors.As(err, &ce) || ce.ConfigField() != tc.field {
				t.Fatalf("Check = %#v (%v), want a *CheckError for field %q", err, err, tc.field)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			secrets := []string{"right passphrase", "ssh-rsa AAAA", strings.Split(encrypted, "\n")[1]}
			for _, k := range testKeys() {
				secrets = append(secrets, strings.Split(pemPKCS8(t, k), "\n")[1])
			}
			for _, secret := range secrets {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret (%s): %q", secret, err)
				}
			}
		})
	}
}
