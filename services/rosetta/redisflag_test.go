package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpHidesRedisPassword: `rosetta api -h` prints flag defaults; a
// Redis URL holding a password must not be one of them.
func TestHelpHidesRedisPassword(t *testing.T) {
	t.Setenv("ROSETTA_REDIS_URL", "redis://:pw-0815-secret@127.0.0.1:1/0")
	var out, stderr bytes.Buffer
	if err := run([]string{"api", "-h"}, &out, &stderr); err != nil {
		t.Fatalf("api -h: %v", err)
	}
	if !strings.Contains(stderr.String(), "-redis-url") {
		t.Fatalf("api -h does not list -redis-url:\n%s", stderr.String())
	}
	if strings.Contains(out.String()+stderr.String(), "pw-0815-secret") {
		t.Fatalf("api -h prints the Redis password:\n%s", stderr.String())
	}
}

// TestHelpHidesURLSecrets: the same for the config database's DSN and the
// NATS URL, of a service and of rosetta tail, while the values given
// still reach the settings.
func TestHelpHidesURLSecrets(t *testing.T) {
	tests := []struct {
		name, env, value, secret string
		args                     []string
	}{
		{"config dsn url", "ROSETTA_CONFIG_DSN", "postgres://rosetta:cfg-pw-4711@db:5432/rosetta", "cfg-pw-4711", []string{"api", "-h"}},
		{"config dsn keywords", "ROSETTA_CONFIG_DSN", "host=db user=rosetta password='cfg pw 4712' dbname=rosetta", "cfg pw 4712", []string{"api", "-h"}},
		{"nats token", "ROSETTA_NATS_URL", "nats://tok-4713@nats:4222", "tok-4713", []string{"sink", "-h"}},
		{"tail nats", "ROSETTA_NATS_URL", "nats://user:nats-pw-4714@nats:4222", "nats-pw-4714", []string{"tail", "-h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.env, tt.value)
			var out, stderr bytes.Buffer
			_ = run(tt.args, &out, &stderr)
			if !strings.Contains(stderr.String(), "REDACTED") {
				t.Errorf("%v does not show the redacted default:\n%s", tt.args, stderr.String())
			}
			if strings.Contains(out.String()+stderr.String(), tt.secret) {
				t.Errorf("%v prints the secret:\n%s", tt.args, stderr.String())
			}
		})
	}
	var f urlFlag
	v := "nats://a:b@h:1"
	f.p = &v
	if err := f.Set("nats://c:secret-4715@h:2"); err != nil || v != "nats://c:secret-4715@h:2" {
		t.Fatalf("Set kept %q, %v; want the value given", v, err)
	}
}
