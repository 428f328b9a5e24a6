// Package apitoken holds what an API token is: its format, how it is
// hashed for storage, and the roles it grants. The config store keeps only
// hashes; the API compares hashes of what clients send.
package apitoken

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Prefix starts every token Rosetta generates, so a leaked one is easy to
// recognise (secret scanners, logs).
const Prefix = "rst_"

// MinLength is the shortest token accepted from ROSETTA_API_TOKEN: 32
// characters of a random string are enough that guessing is hopeless.
const MinLength = 32

// Generate returns a new token: Prefix and 32 random bytes, base64url.
func Generate() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate api token: %w", err)
	}
	return Prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Hash is what is stored of a token: hex SHA-256. Tokens are random and
// long, so a fast hash is enough (no dictionary to try); a stolen table of
// hashes does not authenticate anyone.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CheckBootstrap validates a token given by the operator
// (ROSETTA_API_TOKEN): long enough and printable without spaces, since it
// travels in an HTTP header.
func CheckBootstrap(token string) error {
	if len(token) < MinLength {
		return fmt.Errorf("the API token is %d characters: use at least %d random ones (e.g. `openssl rand -hex 32`)", len(token), MinLength)
	}
	for _, r := range token {
		if r <= ' ' || r >= 0x7f {
			return fmt.Errorf("the API token must be printable ASCII without spaces")
		}
	}
	return nil
}

// Role is what a token may do. Roles are ordered: each can do everything
// the ones before it can.
type Role int

// Roles, least to most. Public is not a token's role: it marks routes
// that need no token (GET /api/v1/health).
const (
	Public Role = iota
	Viewer
	Operator
	Admin
)

// Roles lists the roles a token can have, least to most.
var Roles = []Role{Viewer, Operator, Admin}

func (r Role) String() string {
	switch r {
	case Public:
		return "public"
	case Viewer:
		return "viewer"
	case Operator:
		return "operator"
	case Admin:
		return "admin"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Allows reports whether a token of role r may use a route that needs min.
func (r Role) Allows(min Role) bool { return r >= min }

// ParseRole reads a token role: viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "viewer":
		return Viewer, nil
	case "operator":
		return Operator, nil
	case "admin":
		return Admin, nil
	}
	return 0, fmt.Errorf("role %q: want viewer, operator or admin", s)
}
