package settings

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadAtRest(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "jskey")
	if err := os.WriteFile(keyFile, []byte("from-a-file-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		env     map[string]string
		want    AtRest
		wantErr string
	}{
		{name: "default: on, chacha, derived key", want: DefaultAtRest()},
		{name: "off", env: map[string]string{EnvJSEncryption: "off"}, want: AtRest{JetStreamCipher: DefaultCipher()}},
		{name: "aes with a key", env: map[string]string{EnvJSCipher: "aes", EnvJSKey: "0123456789abcdef0"},
			want: AtRest{JetStreamEncryption: true, JetStreamCipher: CipherAES, JetStreamKey: "0123456789abcdef0"}},
		{name: "key from a file", env: map[string]string{EnvJSKey + "_FILE": keyFile},
			want: AtRest{JetStreamEncryption: true, JetStreamCipher: DefaultCipher(), JetStreamKey: "from-a-file-0123456789"}},
		{name: "unknown cipher", env: map[string]string{EnvJSCipher: "des"}, wantErr: EnvJSCipher},
		{name: "not on or off", env: map[string]string{EnvJSEncryption: "maybe"}, wantErr: EnvJSEncryption},
		{name: "off with a key", env: map[string]string{EnvJSEncryption: "off", EnvJSKey: "0123456789abcdef0"}, wantErr: EnvJSEncryption + "=off"},
		{name: "short key", env: map[string]string{EnvJSKey: "short"}, wantErr: "too short"},
		{name: "previous without a key", env: map[string]string{EnvJSKeyPrev: "0123456789abcdef0"}, wantErr: EnvJSKeyPrev},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			s, err := Load()
			if err == nil {
				err = s.AtRest.validate()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || s.AtRest != tt.want {
				t.Fatalf("AtRest = %+v, %v; want %+v", s.AtRest, err, tt.want)
			}
		})
	}
}
