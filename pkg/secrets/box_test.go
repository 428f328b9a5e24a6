package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
)

const (
	testKey  = "0123456789abcdef-test-key"
	otherKey = "another-key-0123456789"
)

var srcPassword = Binding("sources", 1, "password")

func TestSealOpen(t *testing.T) {
	t.Parallel()
	box, err := NewBox(testKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range []string{"", "p", "correct horse battery staple", string(bytes.Repeat([]byte{0xff}, 4096))} {
		sealed, err := box.SealString(pt, srcPassword)
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) >= 4 && bytes.Contains(sealed, []byte(pt)) {
			t.Fatalf("sealed value contains the plaintext")
		}
		if sealed[0] != version2 {
			t.Fatalf("version byte = %d, want %d", sealed[0], version2)
		}
		if !box.Current(sealed) {
			t.Fatal("a fresh seal is not Current")
		}
		got, err := box.OpenString(sealed, srcPassword)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if got != pt {
			t.Fatalf("open = %q, want %q", got, pt)
		}
	}
}

func TestSealUsesFreshNonce(t *testing.T) {
	t.Parallel()
	box, _ := NewBox(testKey)
	a, _ := box.SealString("secret", srcPassword)
	b, _ := box.SealString("secret", srcPassword)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one value are equal: nonce is not random")
	}
}

func TestOpenFailures(t *testing.T) {
	t.Parallel()
	box, _ := NewBox(testKey)
	other, _ := NewBox(otherKey)
	sealed, _ := box.SealString("secret", srcPassword)

	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	badVersion := bytes.Clone(sealed)
	badVersion[0] = 9
	badKeyID := bytes.Clone(sealed)
	badKeyID[2] ^= 1

	tests := []struct {
		name    string
		box     *Box
		input   []byte
		binding string
		want    error
	}{
		{"other key", other, sealed, srcPassword, ErrUnknownKey},
		{"altered ciphertext", box, flipped, srcPassword, ErrWrongKey},
		{"altered key id", box, badKeyID, srcPassword, ErrUnknownKey},
		// A value moved to another row, table or field of the config DB.
		{"another row", box, sealed, Binding("sources", 2, "password"), ErrWrongKey},
		{"another table", box, sealed, Binding("destinations", 1, "password"), ErrWrongKey},
		{"another field", box, sealed, Binding("sources", 1, "secrets"), ErrWrongKey},
		{"unknown version", box, badVersion, srcPassword, ErrMalformed},
		{"too short", box, sealed[:10], srcPassword, ErrMalformed},
		{"empty", box, nil, srcPassword, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.box.Open(tt.input, tt.binding)
			if !errors.Is(err, tt.want) {
				t.Fatalf("open: err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestRotationKeys: a box with the old key as previous opens what the old
// key sealed, seals under the new one, and says which values need a re-seal.
func TestRotationKeys(t *testing.T) {
	t.Parallel()
	old, _ := NewBox(otherKey)
	sealedOld, _ := old.SealString("pw", srcPassword)
	rotating, err := NewBox(testKey, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if rotating.Current(sealedOld) {
		t.Fatal("a value of the previous key is Current")
	}
	got, err := rotating.OpenString(sealedOld, srcPassword)
	if err != nil || got != "pw" {
		t.Fatalf("open with the previous key = %q, %v", got, err)
	}
	resealed, _ := rotating.SealString(got, srcPassword)
	if !rotating.Current(resealed) {
		t.Fatal("a re-sealed value is not Current")
	}
	// Once the previous key is gone, only re-sealed values open.
	after, _ := NewBox(testKey)
	if _, err := after.Open(sealedOld, srcPassword); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old value without the previous key: err = %v, want ErrUnknownKey", err)
	}
	if v, err := after.OpenString(resealed, srcPassword); err != nil || v != "pw" {
		t.Fatalf("re-sealed value = %q, %v", v, err)
	}
	if old.KeyID() == after.KeyID() {
		t.Fatal("two keys share a key id")
	}
}

// sealV1 seals the way version 1 did (SHA-256 of the key string, only the
// version byte authenticated), for the upgrade test.
func sealV1(t *testing.T, secret, pt string) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(secret))
	block, _ := aes.NewCipher(sum[:])
	aead, _ := cipher.NewGCM(block)
	out := make([]byte, 1+aead.NonceSize())
	out[0] = version1
	if _, err := rand.Read(out[1:]); err != nil {
		t.Fatal(err)
	}
	return aead.Seal(out, out[1:], []byte(pt), out[:1])
}

func TestOpensVersion1(t *testing.T) {
	t.Parallel()
	v1 := sealV1(t, otherKey, "legacy")
	for _, tt := range []struct {
		name string
		box  func() (*Box, error)
		ok   bool
	}{
		{"same key", func() (*Box, error) { return NewBox(otherKey) }, true},
		{"as previous key", func() (*Box, error) { return NewBox(testKey, otherKey) }, true},
		{"another key", func() (*Box, error) { return NewBox(testKey) }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			box, err := tt.box()
			if err != nil {
				t.Fatal(err)
			}
			got, err := box.OpenString(v1, srcPassword)
			if tt.ok && (err != nil || got != "legacy") {
				t.Fatalf("open v1 = %q, %v", got, err)
			}
			if !tt.ok && !errors.Is(err, ErrWrongKey) {
				t.Fatalf("open v1 under another key: err = %v, want ErrWrongKey", err)
			}
			if box.Current(v1) {
				t.Fatal("a version 1 value is Current: rotate would skip it")
			}
		})
	}
}

func TestNewBoxRefusesEmptyKey(t *testing.T) {
	t.Parallel()
	if _, err := NewBox(""); err == nil {
		t.Fatal("NewBox(\"\") succeeded")
	}
}
