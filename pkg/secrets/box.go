// Package secrets encrypts the passwords and keys Rosetta stores in its
// config database, with AES-256-GCM under keys derived from
// ROSETTA_SECRET_KEY (and, while a rotation runs, ROSETTA_SECRET_KEY_PREVIOUS).
//
// A sealed value (version 2) is: the version byte 2, a 4-byte key id, a
// 12-byte random nonce, then the GCM ciphertext with its 16-byte tag. The AES
// key and the key id are both derived from the configured key with HKDF-SHA256
// under different labels, so the id names the key without revealing it. The
// additional data authenticated with every value is the version, the key id
// and the value's binding: the table, row and field it belongs to
// (Binding), so a sealed value copied to another row or field fails to open.
//
// Version 1 values (AES-256-GCM under SHA-256 of the key string, no key id, no
// binding) are still opened, so an installation upgrades without a step;
// `rosetta secrets rotate` re-seals them as version 2.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
)

const (
	// version1 marks values sealed with AES-256-GCM under SHA-256(key
	// string), with only the version byte as additional data.
	version1 byte = 1
	// version2 marks values sealed under an HKDF-derived key, with the key
	// id and the value's binding as additional data.
	version2 byte = 2

	keyIDLen = 4
	// hkdfSalt is fixed: the input is a secret of its own, and a fixed salt
	// makes the derivation a pure function of the configured key.
	hkdfSalt   = "rosetta secrets v2"
	labelAEAD  = "aes-256-gcm key"
	labelKeyID = "key id"
)

// ErrMalformed is returned by Open for a value that is not a sealed value of
// a known version.
var ErrMalformed = errors.New("secrets: malformed sealed value")

// ErrWrongKey is returned by Open when authentication fails: the value was
// sealed under another key (ROSETTA_SECRET_KEY changed), belongs to another
// row or field, or was altered.
var ErrWrongKey = errors.New("secrets: cannot decrypt: sealed with another key, for another row or field, or altered")

// ErrUnknownKey is returned by Open for a version 2 value whose key id is
// neither the current key's nor a previous key's.
var ErrUnknownKey = errors.New("secrets: sealed under a key that is neither ROSETTA_SECRET_KEY nor ROSETTA_SECRET_KEY_PREVIOUS")

// Binding names the place a sealed value belongs to: its table, row id and
// field. Open succeeds only with the binding Seal was given.
func Binding(table string, id int64, field string) string {
	return table + "/" + strconv.FormatInt(id, 10) + "/" + field
}

// key is one configured secret key, derived both ways.
type key struct {
	id     [keyIDLen]byte
	aead   cipher.AEAD // version 2
	legacy cipher.AEAD // version 1: SHA-256 of the key string
}

// Box seals and opens secrets. It is safe for concurrent use.
type Box struct {
	current  key
	previous []key
}

// NewBox derives the keys of current (used to seal) and of each previous key
// (only used to open values a rotation has not re-sealed yet). current must
// not be empty; its strength is the caller's concern (settings.Validate asks
// for at least 16 characters).
func NewBox(current string, previous ...string) (*Box, error) {
	if current == "" {
		return nil, errors.New("secrets: empty key")
	}
	cur, err := deriveKey(current)
	if err != nil {
		return nil, err
	}
	b := &Box{current: cur}
	for _, p := range previous {
		if p == "" || p == current {
			continue
		}
		k, err := deriveKey(p)
		if err != nil {
			return nil, err
		}
		b.previous = append(b.previous, k)
	}
	return b, nil
}

func deriveKey(secret string) (key, error) {
	var k key
	raw, err := hkdf.Key(sha256.New, []byte(secret), []byte(hkdfSalt), labelAEAD, 32)
	if err != nil {
		return k, fmt.Errorf("secrets: derive key: %w", err)
	}
	id, err := hkdf.Key(sha256.New, []byte(secret), []byte(hkdfSalt), labelKeyID, keyIDLen)
	if err != nil {
		return k, fmt.Errorf("secrets: derive key id: %w", err)
	}
	copy(k.id[:], id)
	if k.aead, err = newGCM(raw); err != nil {
		return k, err
	}
	sum := sha256.Sum256([]byte(secret))
	if k.legacy, err = newGCM(sum[:]); err != nil {
		return k, err
	}
	return k, nil
}

func newGCM(k []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("secrets: new cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: new gcm: %w", err)
	}
	return aead, nil
}

// KeyID is the current key's id, as printed by `rosetta secrets rotate`.
func (b *Box) KeyID() string { return fmt.Sprintf("%x", b.current.id) }

// headerLen is the version byte plus the key id.
const headerLen = 1 + keyIDLen

// additionalData is what GCM authenticates beside the ciphertext: the
// header (version and key id) and the binding.
func additionalData(header []byte, binding string) []byte {
	ad := make([]byte, 0, len(header)+len(binding))
	ad = append(ad, header...)
	return append(ad, binding...)
}

// Seal encrypts plaintext under the current key for binding, with a fresh
// random nonce, so sealing the same value twice gives different outputs.
func (b *Box) Seal(plaintext []byte, binding string) ([]byte, error) {
	aead := b.current.aead
	ns := aead.NonceSize()
	out := make([]byte, headerLen+ns, headerLen+ns+len(plaintext)+aead.Overhead())
	out[0] = version2
	copy(out[1:headerLen], b.current.id[:])
	if _, err := rand.Read(out[headerLen : headerLen+ns]); err != nil {
		return nil, fmt.Errorf("secrets: nonce: %w", err)
	}
	return aead.Seal(out, out[headerLen:headerLen+ns], plaintext, additionalData(out[:headerLen], binding)), nil
}

// Open decrypts a value made by Seal with the same binding, under the current
// or a previous key, or a version 1 value (which has no binding).
func (b *Box) Open(sealed []byte, binding string) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, ErrMalformed
	}
	switch sealed[0] {
	case version1:
		return b.openV1(sealed)
	case version2:
		return b.openV2(sealed, binding)
	default:
		return nil, fmt.Errorf("%w: unknown version %d", ErrMalformed, sealed[0])
	}
}

func (b *Box) openV2(sealed []byte, binding string) ([]byte, error) {
	ns := b.current.aead.NonceSize()
	if len(sealed) < headerLen+ns+b.current.aead.Overhead() {
		return nil, ErrMalformed
	}
	k, ok := b.keyByID(sealed[1:headerLen])
	if !ok {
		return nil, fmt.Errorf("%w (key id %x)", ErrUnknownKey, sealed[1:headerLen])
	}
	pt, err := k.aead.Open(nil, sealed[headerLen:headerLen+ns], sealed[headerLen+ns:], additionalData(sealed[:headerLen], binding))
	if err != nil {
		return nil, ErrWrongKey
	}
	return pt, nil
}

// openV1 tries the legacy derivation of every configured key: version 1
// values carry no key id.
func (b *Box) openV1(sealed []byte) ([]byte, error) {
	ns := b.current.legacy.NonceSize()
	if len(sealed) < 1+ns+b.current.legacy.Overhead() {
		return nil, ErrMalformed
	}
	for _, k := range b.keys() {
		if pt, err := k.legacy.Open(nil, sealed[1:1+ns], sealed[1+ns:], sealed[:1]); err == nil {
			return pt, nil
		}
	}
	return nil, ErrWrongKey
}

func (b *Box) keys() []key { return append([]key{b.current}, b.previous...) }

func (b *Box) keyByID(id []byte) (key, bool) {
	for _, k := range b.keys() {
		if string(k.id[:]) == string(id) {
			return k, true
		}
	}
	return key{}, false
}

// Current reports whether sealed is a version 2 value under the current key:
// what a rotation leaves alone.
func (b *Box) Current(sealed []byte) bool {
	return len(sealed) >= headerLen && sealed[0] == version2 && string(sealed[1:headerLen]) == string(b.current.id[:])
}

// SealString seals s for binding.
func (b *Box) SealString(s, binding string) ([]byte, error) { return b.Seal([]byte(s), binding) }

// OpenString opens a value sealed by SealString with the same binding.
func (b *Box) OpenString(sealed []byte, binding string) (string, error) {
	pt, err := b.Open(sealed, binding)
	if err != nil {
		return "", err
	}
	return string(pt), nil
}
