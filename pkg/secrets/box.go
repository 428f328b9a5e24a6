// Package secrets encrypts the passwords and keys Rosetta stores in its
// config database, with AES-256-GCM under a key derived from
// ROSETTA_SECRET_KEY.
//
// A sealed value is: one version byte, a 12-byte random nonce, then the GCM
// ciphertext with its 16-byte tag. The version byte lets a later format (or
// key derivation) be read alongside this one.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// version1 marks values sealed with AES-256-GCM under SHA-256(key string).
const version1 byte = 1

// ErrMalformed is returned by Open for a value that is not a sealed value of
// a known version.
var ErrMalformed = errors.New("secrets: malformed sealed value")

// ErrWrongKey is returned by Open when authentication fails: the value was
// sealed under another key (ROSETTA_SECRET_KEY changed) or was altered.
var ErrWrongKey = errors.New("secrets: cannot decrypt: sealed with another key or altered")

// Box seals and opens secrets. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// NewBox derives the AES-256 key as SHA-256 of key. key must not be empty;
// its strength is the caller's concern (settings.Validate asks for at least
// 16 characters).
func NewBox(key string) (*Box, error) {
	if key == "" {
		return nil, errors.New("secrets: empty key")
	}
	sum := sha256.Sum256([]byte(key))
	block, err := aes.NewCipher(sum[:])
	if err != nil {
		return nil, fmt.Errorf("secrets: new cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: new gcm: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext with a fresh random nonce, so sealing the same
// value twice gives different outputs.
func (b *Box) Seal(plaintext []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+b.aead.Overhead())
	out[0] = version1
	if _, err := rand.Read(out[1 : 1+ns]); err != nil {
		return nil, fmt.Errorf("secrets: nonce: %w", err)
	}
	// The version byte is authenticated as additional data, so it cannot
	// be changed without Open failing.
	return b.aead.Seal(out, out[1:1+ns], plaintext, out[:1]), nil
}

// Open decrypts a value made by Seal.
func (b *Box) Open(sealed []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(sealed) < 1+ns+b.aead.Overhead() {
		return nil, ErrMalformed
	}
	if sealed[0] != version1 {
		return nil, fmt.Errorf("%w: unknown version %d", ErrMalformed, sealed[0])
	}
	pt, err := b.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], sealed[:1])
	if err != nil {
		return nil, ErrWrongKey
	}
	return pt, nil
}

// SealString seals s.
func (b *Box) SealString(s string) ([]byte, error) { return b.Seal([]byte(s)) }

// OpenString opens a value sealed by SealString.
func (b *Box) OpenString(sealed []byte) (string, error) {
	pt, err := b.Open(sealed)
	if err != nil {
		return "", err
	}
	return string(pt), nil
}
