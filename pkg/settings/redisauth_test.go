package settings

import (
	"os"
	"strings"
	"testing"
)

func TestValidateRedis(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		url  string
		auth RedisAuth
		want string // empty: valid
	}{
		{"none", "", RedisAuth{}, ""},
		{"plain", "redis://r:6379/0", RedisAuth{}, ""},
		{"tls and user", "rediss://r:6380/0", RedisAuth{User: "rosetta", Password: "pw", TLSCA: "/ca.pem"}, ""},
		{"password only", "redis://r:6379/0", RedisAuth{Password: "pw"}, ""},
		{"auth without url", "", RedisAuth{User: "rosetta", Password: "pw"}, "ROSETTA_REDIS_URL is empty"},
		{"ca without tls", "redis://r:6379/0", RedisAuth{TLSCA: "/ca.pem"}, "is not a rediss:// URL"},
		{"user without password", "redis://r:6379/0", RedisAuth{User: "rosetta"}, "ROSETTA_REDIS_USER is set without ROSETTA_REDIS_PASSWORD"},
		{"cert without key", "rediss://r:6380/0", RedisAuth{TLSCert: "/c.pem"}, "go together"},
		{"password twice", "redis://:secret@r:6379/0", RedisAuth{User: "u", Password: "pw"}, "set the credentials in one place"},
		{"bad scheme", "http://r:6379/0", RedisAuth{}, `scheme "http"`},
		{"unparsable url keeps its secret", "redis://u:se%zzcret@r/0", RedisAuth{}, "is not a URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateRedis(tc.url, tc.auth)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("ValidateRedis: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ValidateRedis = %v; want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error %q holds the password", err)
			}
		})
	}
}

// TestRedisPasswordFile reads the password from ROSETTA_REDIS_PASSWORD_FILE.
func TestRedisPasswordFile(t *testing.T) {
	path := t.TempDir() + "/pw"
	if err := os.WriteFile(path, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvRedisPassword+"_FILE", path)
	t.Setenv(EnvRedisUser, "rosetta")
	a, err := loadRedisAuth()
	if err != nil || a.Password != "from-file" || a.User != "rosetta" {
		t.Fatalf("loadRedisAuth = %+v, %v", a, err)
	}
	t.Setenv(EnvRedisPassword, "also")
	if _, err := loadRedisAuth(); err == nil {
		t.Fatal("both ROSETTA_REDIS_PASSWORD and _FILE: want an error")
	}
}
