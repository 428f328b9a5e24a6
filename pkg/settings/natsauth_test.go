package settings

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNATSAuthFromEnv: the external NATS client settings load from the
// environment, secrets also from NAME_FILE, and conflicting or incomplete
// ones are refused naming the variable.
func TestNATSAuthFromEnv(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pwFile, seedFile, tokFile := file("pw", "pw-from-file\n"), file("seed", "SUAseed\n"), file("tok", "tok-from-file\n")
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    NATSAuth
		wantErr string
	}{
		{name: "user and password file", env: map[string]string{EnvNATSUser: "sink", EnvNATSPassword + "_FILE": pwFile},
			want: NATSAuth{User: "sink", Password: "pw-from-file"}},
		{name: "nkey seed file", env: map[string]string{EnvNATSNKeySeed + "_FILE": seedFile}, want: NATSAuth{NKeySeed: "SUAseed"}},
		{name: "token file and TLS", env: map[string]string{EnvNATSToken + "_FILE": tokFile, EnvNATSTLSCA: "ca.pem", EnvNATSCert: "c.pem", EnvNATSKey: "k.pem"},
			want: NATSAuth{Token: "tok-from-file", TLSCA: "ca.pem", TLSCert: "c.pem", TLSKey: "k.pem"}},
		{name: "creds", env: map[string]string{EnvNATSCreds: "/etc/rosetta/sink.creds"}, want: NATSAuth{CredsFile: "/etc/rosetta/sink.creds"}},
		{name: "token and password both", env: map[string]string{EnvNATSToken: "t", EnvNATSPassword: "p", EnvNATSUser: "u"}, wantErr: "one identity"},
		{name: "value and file both", env: map[string]string{EnvNATSToken: "t", EnvNATSToken + "_FILE": tokFile}, wantErr: "both set"},
		{name: "user without password", env: map[string]string{EnvNATSUser: "u"}, wantErr: EnvNATSPassword},
		{name: "key without cert", env: map[string]string{EnvNATSKey: "k.pem"}, wantErr: EnvNATSCert},
		{name: "inbox prefix", env: map[string]string{EnvNATSUser: "sink", EnvNATSPassword: "p", EnvNATSInbox: "_INBOX_rosetta_sink"},
			want: NATSAuth{User: "sink", Password: "p", InboxPrefix: "_INBOX_rosetta_sink"}},
		{name: "inbox prefix with a wildcard", env: map[string]string{EnvNATSInbox: "_INBOX_rosetta.*"}, wantErr: EnvNATSInbox},
		{name: "inbox prefix with an empty token", env: map[string]string{EnvNATSInbox: "_INBOX_rosetta."}, wantErr: EnvNATSInbox},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			t.Setenv(EnvNATSURL, "nats://nats:4222")
			a, err := LoadNATSAuth()
			if err == nil {
				s, lerr := Load()
				if lerr != nil || s.NATSAuth != a {
					t.Fatalf("Load: %+v, %v; want NATSAuth %+v", s.NATSAuth, lerr, a)
				}
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || a != tc.want {
				t.Fatalf("LoadNATSAuth = %+v, %v; want %+v", a, err, tc.want)
			}
		})
	}
}

// TestNATSAuthNeedsExternalURL: client credentials without ROSETTA_NATS_URL
// would be silently unused (the embedded server has its own users).
func TestNATSAuthNeedsExternalURL(t *testing.T) {
	s := Default()
	s.SecretKey = "a-real-key-0123456789"
	s.NATSAuth = NATSAuth{User: "capture", Password: "pw"}
	if _, err := s.Validate(); err == nil || !strings.Contains(err.Error(), EnvNATSURL) {
		t.Fatalf("Validate: err = %v, want one naming %s", err, EnvNATSURL)
	}
	s.NATSURL = "nats://nats:4222"
	if _, err := s.Validate(); err != nil {
		t.Fatalf("Validate with a URL: %v", err)
	}
}
