package secrets

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// labelJetStream derives the JetStream encryption key: a label of its own,
// so the key JetStream holds says nothing about the key that seals the
// config DB's secrets, and the other way round.
const labelJetStream = "jetstream at-rest key"

// JetStreamKey derives the key the embedded NATS server encrypts its
// JetStream files with from secret (ROSETTA_SECRET_KEY), as 64 hex
// characters. It is a pure function of secret: the same key opens the
// store after a restart, and the key before a rotation
// (ROSETTA_SECRET_KEY_PREVIOUS) derives the server's previous key.
func JetStreamKey(secret string) (string, error) {
	if secret == "" {
		return "", errors.New("secrets: empty key")
	}
	raw, err := hkdf.Key(sha256.New, []byte(secret), []byte(hkdfSalt), labelJetStream, 32)
	if err != nil {
		return "", fmt.Errorf("secrets: derive jetstream key: %w", err)
	}
	return hex.EncodeToString(raw), nil
}
