package secrets

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	box, err := NewBox("0123456789abcdef-test-key")
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range []string{"", "p", "correct horse battery staple", string(bytes.Repeat([]byte{0xff}, 4096))} {
		sealed, err := box.SealString(pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) >= 4 && bytes.Contains(sealed, []byte(pt)) {
			t.Fatalf("sealed value contains the plaintext")
		}
		if sealed[0] != version1 {
			t.Fatalf("version byte = %d, want %d", sealed[0], version1)
		}
		got, err := box.OpenString(sealed)
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
	box, _ := NewBox("0123456789abcdef-test-key")
	a, _ := box.SealString("secret")
	b, _ := box.SealString("secret")
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one value are equal: nonce is not random")
	}
}

func TestOpenFailures(t *testing.T) {
	t.Parallel()
	box, _ := NewBox("0123456789abcdef-test-key")
	other, _ := NewBox("another-key-0123456789")
	sealed, _ := box.SealString("secret")

	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	badVersion := bytes.Clone(sealed)
	badVersion[0] = 9

	tests := []struct {
		name  string
		box   *Box
		input []byte
		want  error
	}{
		{"other key", other, sealed, ErrWrongKey},
		{"altered ciphertext", box, flipped, ErrWrongKey},
		{"unknown version", box, badVersion, ErrMalformed},
		{"too short", box, sealed[:10], ErrMalformed},
		{"empty", box, nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.box.Open(tt.input)
			if !errors.Is(err, tt.want) {
				t.Fatalf("open: err = %v, want %v", err, tt.want)
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
