package natsx

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

const atRestStream = "ATREST"

// writeMarked starts a server on dir with ar, stores one message holding
// a unique marker in a file-backed stream, and shuts the server down so
// that everything it buffered is on disk.
func writeMarked(t *testing.T, dir string, ar AtRest) []byte {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	marker := []byte("row-marker-" + hex.EncodeToString(b))
	e, err := StartEmbedded(EmbeddedConfig{Dir: dir, Port: -1, AtRest: ar}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc, js, err := Connect(ctx, e.ClientURL(), t.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: atRestStream, Subjects: []string{"atrest.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	row := append([]byte(`{"op":"c","after":{"note":"`), marker...)
	row = append(row, `"}}`...)
	if _, err := js.Publish(ctx, "atrest.row", row); err != nil {
		t.Fatal(err)
	}
	return marker
}

// readBack starts a server on dir with ar and returns the first message of
// the stream.
func readBack(t *testing.T, dir string, ar AtRest) ([]byte, error) {
	t.Helper()
	e, err := StartEmbedded(EmbeddedConfig{Dir: dir, Port: -1, AtRest: ar}, nil)
	if err != nil {
		return nil, err
	}
	defer e.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc, js, err := Connect(ctx, e.ClientURL(), t.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s, err := js.Stream(ctx, atRestStream)
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("message 1 after restart: %v", err)
	}
	return m.Data, nil
}

// filesContaining lists the files under dir that hold needle.
func filesContaining(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestAtRestEncryptsStreamFiles: with a key no file of the store holds a
// row's text, without one the row is there in clear (so the scan can
// find it), and a restart with the same key reads the row back.
func TestAtRestEncryptsStreamFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		ar        AtRest
		encrypted bool
	}{
		{"off", AtRest{}, false},
		{"chacha", AtRest{Key: "test-key-0123456789abcdef", Cipher: server.ChaCha}, true},
		{"aes", AtRest{Key: "test-key-0123456789abcdef", Cipher: server.AES}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			marker := writeMarked(t, dir, tc.ar)
			hits := filesContaining(t, dir, marker)
			if tc.encrypted && len(hits) > 0 {
				t.Fatalf("the row's text is in clear in %v", hits)
			}
			if !tc.encrypted && len(hits) == 0 {
				t.Fatal("no file holds the unencrypted row: the scan cannot see a row")
			}
			got, err := readBack(t, dir, tc.ar)
			if err != nil {
				t.Fatalf("restart with the same key: %v", err)
			}
			if !bytes.Contains(got, marker) {
				t.Fatalf("row after restart = %q, want it to hold %q", got, marker)
			}
		})
	}
}

// TestAtRestRefusesAnotherKey: a store written encrypted does not start
// with encryption off or under another key (the server would skip its
// streams and Rosetta would make empty ones), and a rotation that names
// the old key as the previous one keeps the rows.
func TestAtRestRefusesAnotherKey(t *testing.T) {
	t.Parallel()
	keyA := AtRest{Key: "key-A-0123456789abcdef", KeySetting: "TEST_KEY"}
	keyB := AtRest{Key: "key-B-0123456789abcdef", KeySetting: "TEST_KEY"}
	rotate := AtRest{Key: keyB.Key, PreviousKey: keyA.Key}
	for _, tc := range []struct {
		name string
		// forget removes Rosetta's record of the key, as a store written
		// by an older Rosetta has none: the server's loading is checked.
		forget bool
		steps  []AtRest
		ok     bool
	}{
		{name: "same key", steps: []AtRest{keyA}, ok: true},
		{name: "encryption off", steps: []AtRest{{}}},
		{name: "encryption off, no record", forget: true, steps: []AtRest{{}}},
		{name: "another key", steps: []AtRest{keyB}},
		{name: "another key, no record", forget: true, steps: []AtRest{keyB}},
		{name: "rotation, then the new key alone", steps: []AtRest{rotate, keyB}, ok: true},
		{name: "rotation, then the old key", steps: []AtRest{rotate, keyA}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			marker := writeMarked(t, dir, keyA)
			if tc.forget {
				if err := os.Remove(filepath.Join(dir, storeKeyFile)); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			var got []byte
			for _, ar := range tc.steps {
				if got, err = readBack(t, dir, ar); err != nil {
					break
				}
				if !bytes.Contains(got, marker) {
					t.Fatalf("row = %q, want it to hold %q", got, marker)
				}
			}
			switch {
			case tc.ok && err != nil:
				t.Fatalf("start: %v", err)
			case !tc.ok && !errors.Is(err, ErrStoreKey):
				t.Fatalf("start: %v, want %v", err, ErrStoreKey)
			case !tc.ok:
				t.Logf("refused as wanted: %v", err)
			}
		})
	}
}

// TestAtRestEncryptsAPlaintextStore: a store written before encryption
// (a `rosetta dev` upgraded in place) is encrypted as the server loads it
// with a key: the row reads back and is then in no file.
func TestAtRestEncryptsAPlaintextStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker := writeMarked(t, dir, AtRest{})
	if len(filesContaining(t, dir, marker)) == 0 {
		t.Fatal("no file holds the unencrypted row: the scan cannot see a row")
	}
	key := AtRest{Key: "key-A-0123456789abcdef", Cipher: server.ChaCha}
	got, err := readBack(t, dir, key)
	if err != nil {
		t.Fatalf("first start with a key: %v", err)
	}
	if !bytes.Contains(got, marker) {
		t.Fatalf("row = %q, want it to hold %q", got, marker)
	}
	if hits := filesContaining(t, dir, marker); len(hits) > 0 {
		t.Fatalf("after a start with a key the row is still in clear in %v", hits)
	}
	if _, err := readBack(t, dir, AtRest{}); !errors.Is(err, ErrStoreKey) {
		t.Fatalf("start with encryption off after it was on: %v, want %v", err, ErrStoreKey)
	}
}

// TestAtRestChangesCipher: a store written with ChaCha20-Poly1305 (the
// default before AES-GCM became it on CPUs with AES instructions) opens
// under the same key with AES-GCM, and the other way round: the server
// converts the blocks as it loads them.
func TestAtRestChangesCipher(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		from, to server.StoreCipher
	}{{"chacha to aes", server.ChaCha, server.AES}, {"aes to chacha", server.AES, server.ChaCha}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			const key = "key-A-0123456789abcdef"
			marker := writeMarked(t, dir, AtRest{Key: key, Cipher: tc.from})
			got, err := readBack(t, dir, AtRest{Key: key, Cipher: tc.to})
			if err != nil {
				t.Fatalf("start with the other cipher: %v", err)
			}
			if !bytes.Contains(got, marker) {
				t.Fatalf("row = %q, want it to hold %q", got, marker)
			}
			if hits := filesContaining(t, dir, marker); len(hits) > 0 {
				t.Fatalf("after the cipher change the row is in clear in %v", hits)
			}
		})
	}
}
