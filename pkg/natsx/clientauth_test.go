package natsx_test

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// startAuthServer runs a NATS server on loopback that admits only the
// given users, nkeys or token, over TLS signed by ca when leaf is set (and
// then only clients with a certificate from ca).
func startAuthServer(t *testing.T, opts *server.Options, ca *testkit.CA, leaf *testkit.Leaf) string {
	t.Helper()
	opts.Host, opts.Port, opts.NoSigs, opts.NoLog = "127.0.0.1", -1, true, true
	if leaf != nil {
		opts.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{leaf.TLS},
			ClientCAs:    ca.Pool(),
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		}
		opts.TLS, opts.TLSVerify, opts.TLSTimeout = true, true, 5
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// TestAuthOptions: each identity setting (user and password, token, nkey
// seed) with the TLS CA and client certificate settings connects to a
// server that requires them, and a client without them is refused.
func TestAuthOptions(t *testing.T) {
	t.Parallel()
	ca := testkit.NewCA(t)
	srvLeaf := ca.Issue(t, "nats-server", "127.0.0.1", "localhost")
	client := ca.Issue(t, "client")
	seed := func() (string, string) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		s, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		return string(s), pub
	}
	nkSeed, nkPub := seed()
	tlsAuth := settings.NATSAuth{TLSCA: ca.CertFile, TLSCert: client.CertFile, TLSKey: client.KeyFile}

	tests := []struct {
		name string
		srv  *server.Options
		auth settings.NATSAuth
	}{
		{"user and password", &server.Options{Users: []*server.User{{Username: "sink", Password: "s3cret-pw"}}},
			settings.NATSAuth{User: "sink", Password: "s3cret-pw"}},
		{"token", &server.Options{Authorization: "tok-0123456789"}, settings.NATSAuth{Token: "tok-0123456789"}},
		{"nkey seed", &server.Options{Nkeys: []*server.NkeyUser{{Nkey: nkPub}}}, settings.NATSAuth{NKeySeed: nkSeed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := startAuthServer(t, tt.srv, ca, &srvLeaf)
			a := tt.auth
			a.TLSCA, a.TLSCert, a.TLSKey = tlsAuth.TLSCA, tlsAuth.TLSCert, tlsAuth.TLSKey
			opts, err := natsx.AuthOptions(a)
			if err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(url, opts...)
			if err != nil {
				t.Fatalf("connect with %s over TLS: %v", tt.name, err)
			}
			if !nc.TLSRequired() {
				t.Error("connected without TLS")
			}
			nc.Close()

			// The same TLS but no identity: refused by the server.
			opts, err = natsx.AuthOptions(tlsAuth)
			if err != nil {
				t.Fatal(err)
			}
			if nc, err := nats.Connect(url, opts...); err == nil {
				nc.Close()
				t.Fatal("a client without credentials was admitted")
			} else if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("without credentials: %v, want an authorization error", err)
			}
			// The identity without a client certificate: refused by TLS.
			noCert := tt.auth
			noCert.TLSCA = ca.CertFile
			opts, err = natsx.AuthOptions(noCert)
			if err != nil {
				t.Fatal(err)
			}
			if nc, err := nats.Connect(url, opts...); err == nil {
				nc.Close()
				t.Fatal("a client without a certificate was admitted")
			}
		})
	}

	// A server certificate from another CA is refused by the client.
	other := testkit.NewCA(t)
	otherLeaf := other.Issue(t, "impostor", "127.0.0.1")
	url := startAuthServer(t, &server.Options{Users: []*server.User{{Username: "sink", Password: "pw"}}}, ca, &otherLeaf)
	opts, err := natsx.AuthOptions(settings.NATSAuth{User: "sink", Password: "pw", TLSCA: ca.CertFile, TLSCert: client.CertFile, TLSKey: client.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(url, opts...); err == nil {
		nc.Close()
		t.Fatal("connected to a server whose certificate the CA did not sign")
	}
}

// TestAuthOptionsRefuse: settings that cannot work fail at start, naming the
// setting, and never echo a secret.
func TestAuthOptionsRefuse(t *testing.T) {
	t.Parallel()
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		auth settings.NATSAuth
		want string
	}{
		{"two identities", settings.NATSAuth{Token: "t0k", User: "u", Password: "p"}, "one identity"},
		{"password without user", settings.NATSAuth{Password: "p"}, settings.EnvNATSUser},
		{"cert without key", settings.NATSAuth{TLSCert: "c.pem"}, settings.EnvNATSKey},
		{"bad seed", settings.NATSAuth{NKeySeed: "SUNOTASEEDxyz"}, settings.EnvNATSNKeySeed},
		{"missing creds file", settings.NATSAuth{CredsFile: "/nonexistent/x.creds"}, settings.EnvNATSCreds},
		{"CA not PEM", settings.NATSAuth{TLSCA: notPEM}, settings.EnvNATSTLSCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := natsx.AuthOptions(tt.auth)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "SUNOTASEED") {
				t.Fatalf("the error echoes the seed: %v", err)
			}
		})
	}
}

// TestConnectRedactsURL: a URL holding a password or a token never
// appears in the error of a failed connect.
func TestConnectRedactsURL(t *testing.T) {
	t.Parallel()
	url := startAuthServer(t, &server.Options{Users: []*server.User{{Username: "capture", Password: "right-pw"}}}, nil, nil)
	hostPort := strings.TrimPrefix(url, "nats://")
	tests := []struct {
		name, url, secret string
	}{
		{"wrong password", "nats://capture:wrong-pw-4711@" + hostPort, "wrong-pw-4711"},
		{"token", "nats://tok-4711-secret@" + hostPort, "tok-4711-secret"},
		{"unparsable", "nats://capture:pw%zz-4711@" + hostPort, "pw%zz-4711"},
		// Letters only: a secret of digits could match the random port.
		{"list", "nats://a:pw-one-qzx@" + hostPort + ",nats://b:pw-two-qzx@" + hostPort, "qzx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			nc, _, err := natsx.Connect(ctx, tt.url, "redact", nil)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if strings.Contains(err.Error(), tt.secret) {
				t.Fatalf("error echoes the secret: %v", err)
			}
			if !strings.Contains(err.Error(), "REDACTED") {
				t.Fatalf("error %q does not say where the credentials were", err)
			}
		})
	}
}
