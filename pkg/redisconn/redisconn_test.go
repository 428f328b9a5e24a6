package redisconn

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestOpen connects to real servers with TLS and an ACL user: the right
// settings connect and write, each wrong one is refused with a message
// naming the setting to fix, and no message holds a password.
func TestOpen(t *testing.T) {
	t.Parallel()
	const pw = "s3cret-pw-for-rosetta"
	ca := testkit.NewCA(t)
	users := []string{"rosetta on >" + pw + " ~dlq:* +@all"}
	tlsACL := testkit.StartRedisWith(t, testkit.RedisOptions{TLS: ca, Users: users})
	mtls := testkit.StartRedisWith(t, testkit.RedisOptions{TLS: ca, TLSAuthClients: true, Users: users})
	plain := testkit.StartRedisWith(t, testkit.RedisOptions{Users: users})
	other := testkit.NewCA(t)
	client := mtls.ClientCert()
	unreadable := filepath.Join(t.TempDir(), "missing-ca.pem")
	good := settings.RedisAuth{User: "rosetta", Password: pw, TLSCA: ca.CertFile}
	with := func(f func(*settings.RedisAuth)) settings.RedisAuth { a := good; f(&a); return a }
	plainURL := strings.Replace(tlsACL.URL(), "rediss://", "redis://", 1)

	for _, tc := range []struct {
		name string
		url  string
		auth settings.RedisAuth
		want string // empty: connects and writes
	}{
		{"tls and acl user", tlsACL.URL(), good, ""},
		{"client certificate", mtls.URL(), with(func(a *settings.RedisAuth) { a.TLSCert, a.TLSKey = client.CertFile, client.KeyFile }), ""},
		{"plain acl user", plain.URL(), settings.RedisAuth{User: "rosetta", Password: pw}, ""},
		{"wrong ca", tlsACL.URL(), with(func(a *settings.RedisAuth) { a.TLSCA = other.CertFile }), "not signed by a trusted CA; set ROSETTA_REDIS_TLS_CA"},
		{"unreadable ca", tlsACL.URL(), with(func(a *settings.RedisAuth) { a.TLSCA = unreadable }), "ROSETTA_REDIS_TLS_CA: cannot read the CA file"},
		{"wrong password", tlsACL.URL(), with(func(a *settings.RedisAuth) { a.Password = "not-" + pw }), `refused user "rosetta"`},
		{"unknown user", tlsACL.URL(), with(func(a *settings.RedisAuth) { a.User = "nobody" }), `refused user "nobody"`},
		{"no credentials", tlsACL.URL(), settings.RedisAuth{TLSCA: ca.CertFile}, "requires authentication: set ROSETTA_REDIS_USER"},
		{"no tls to a tls server", plainURL, settings.RedisAuth{User: "rosetta", Password: pw}, "if it accepts only TLS, use a rediss:// URL"},
		{"tls to a plain server", strings.Replace(plain.URL(), "redis://", "rediss://", 1), with(func(a *settings.RedisAuth) {}), "does not speak TLS on this port"},
		{"no client certificate", mtls.URL(), good, "if it verifies clients (tls-auth-clients) set ROSETTA_REDIS_TLS_CERT"},
		{"password in the url is redacted", "rediss://rosetta:" + pw + "x@" + tlsACL.Addr() + "/0", settings.RedisAuth{TLSCA: ca.CertFile}, "rediss://REDACTED@"},
		{"ca with a plain url", plain.URL(), good, "is not a rediss:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c, err := Open(ctx, tc.url, tc.auth, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				defer c.Close()
				if err := c.XAdd(ctx, &redis.XAddArgs{Stream: "dlq:open-test", Values: []any{"k", "v"}}).Err(); err != nil {
					t.Fatalf("write as the acl user: %v", err)
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("open succeeded; want an error with %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q; want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), pw) {
				t.Fatalf("error %q holds the password", err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://127.0.0.1:6379/0":          "redis://127.0.0.1:6379/0",
		"redis://:pw@redis:6379/0":          "redis://REDACTED@redis:6379/0",
		"rediss://rosetta:pw@redis:6380/0":  "rediss://REDACTED@redis:6380/0",
		"redis://rosetta:p%zz@redis:6379/0": "REDACTED@redis:6379/0",
		"unix:///run/redis.sock?db=0":       "unix:///run/redis.sock?db=0",
		"redis://u:p@w@host:1/0":            "redis://REDACTED@host:1/0",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOptionsCredentials: the settings' user and password apply; a user
// named only in the URL stays when only the password comes from them.
func TestOptionsCredentials(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url            string
		auth           settings.RedisAuth
		user, password string
	}{
		{"redis://h:1/0", settings.RedisAuth{User: "rosetta", Password: "pw"}, "rosetta", "pw"},
		{"redis://h:1/0", settings.RedisAuth{Password: "pw"}, "", "pw"},
		{"redis://rosetta@h:1/0", settings.RedisAuth{Password: "pw"}, "rosetta", "pw"},
		{"redis://:inurl@h:1/0", settings.RedisAuth{}, "", "inurl"},
	} {
		opt, err := Options(tc.url, tc.auth)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if opt.Username != tc.user || opt.Password != tc.password {
			t.Errorf("%s with %+v: user %q password %q, want %q %q", tc.url, tc.auth, opt.Username, opt.Password, tc.user, tc.password)
		}
	}
}
