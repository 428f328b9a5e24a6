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
