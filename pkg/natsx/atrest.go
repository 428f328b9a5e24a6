package natsx

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/nats-io/nats-server/v2/server"
)

// AtRest is how the embedded server encrypts JetStream's files. The zero
// value writes plaintext.
type AtRest struct {
	// Key encrypts; empty turns encryption off.
	Key string
	// PreviousKey is the key before a rotation: the server opens what it
	// wrote and re-encrypts it under Key as it loads each stream.
	PreviousKey string
	// Cipher is server.ChaCha (the zero value) or server.AES.
	Cipher server.StoreCipher
	// KeySetting names where the key comes from, for the errors that tell
	// the operator what to set back.
	KeySetting string
}

func (ar AtRest) keySetting() string {
	if ar.KeySetting == "" {
		return "the key"
	}
	return ar.KeySetting
}

// ErrStoreKey is returned by StartEmbedded when the JetStream store cannot
// be opened with the configured encryption: it was written encrypted and
// encryption is now off, or under another key. The NATS server itself only
// logs a warning and starts without those streams, and Rosetta would then
// create empty ones in their place; refusing to start keeps the data.
var ErrStoreKey = errors.New("jetstream store key mismatch")

// storeKeyFile records, next to JetStream's own directory, whether the
// store is encrypted and a check value of the key (an HMAC of a constant,
// which does not reveal the key), so a changed key is named before the
// server skips what it cannot decrypt.
const storeKeyFile = "rosetta-jetstream-key.json"

type storeKeyRecord struct {
	Encrypted bool   `json:"encrypted"`
	KeyCheck  string `json:"key_check,omitempty"`
	Cipher    string `json:"cipher,omitempty"`
}

// keyCheck identifies key without revealing it.
func keyCheck(key string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("rosetta jetstream key check"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// checkStoreBefore refuses a store that the configured encryption cannot
// open, before the server starts.
func checkStoreBefore(dir string, ar AtRest) error {
	b, err := os.ReadFile(filepath.Join(dir, storeKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		// No record: an older Rosetta, or a store made by hand. Encrypted
		// streams hold a meta.key file; without a key they cannot load.
		enc, err := encryptedStreams(dir)
		if err != nil {
			return err
		}
		if len(enc) > 0 && ar.Key == "" {
			return fmt.Errorf("%w: the JetStream store in %s holds encrypted streams (%v) and encryption is off: turn it on with the key the store was written with (%s)",
				ErrStoreKey, dir, enc, ar.keySetting())
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", storeKeyFile, err)
	}
	var rec storeKeyRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("read %s in %s: %w", storeKeyFile, dir, err)
	}
	if !rec.Encrypted {
		// Plaintext streams load under any key; with one the server
		// encrypts them as it loads them.
		return nil
	}
	if ar.Key == "" {
		return fmt.Errorf("%w: the JetStream store in %s was written encrypted (key check %s) and encryption is now off: turn it back on with the same key (%s), or, to give up its unconsumed changes, move the directory away",
			ErrStoreKey, dir, rec.KeyCheck, ar.keySetting())
	}
	if rec.KeyCheck == keyCheck(ar.Key) || (ar.PreviousKey != "" && rec.KeyCheck == keyCheck(ar.PreviousKey)) {
		return nil
	}
	return fmt.Errorf("%w: the JetStream store in %s was written under another key (key check %s, the configured key's is %s): set the key it was written with back (%s); to change keys, give the new key with the old one as the previous key; or, to give up its unconsumed changes, move the directory away",
		ErrStoreKey, dir, rec.KeyCheck, keyCheck(ar.Key), ar.keySetting())
}

// encryptedStreams lists the streams on disk whose metadata is encrypted,
// as "account/stream".
func encryptedStreams(dir string) ([]string, error) {
	keys, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", "*", server.JetStreamMetaFileKey))
	if err != nil {
		return nil, fmt.Errorf("list encrypted streams in %s: %w", dir, err)
	}
	var out []string
	for _, k := range keys {
		sdir := filepath.Dir(k)
		out = append(out, filepath.Base(filepath.Dir(filepath.Dir(sdir)))+"/"+filepath.Base(sdir))
	}
	return out, nil
}

// checkStoreAfter makes sure the server loaded every encrypted stream on
// disk: one it could not decrypt is skipped with a warning in its log.
func checkStoreAfter(srv *server.Server, dir string, ar AtRest) error {
	enc, err := encryptedStreams(dir)
	if err != nil {
		return err
	}
	loaded := map[string][]string{}
	var missing []string
	for _, as := range enc {
		acc, stream := filepath.Dir(as), filepath.Base(as)
		if _, ok := loaded[acc]; !ok {
			loaded[acc] = []string{}
			if d, err := srv.JszAccount(&server.JSzOptions{Account: acc, Streams: true}); err == nil {
				for _, s := range d.Streams {
					loaded[acc] = append(loaded[acc], s.Name)
				}
			}
		}
		if !slices.Contains(loaded[acc], stream) {
			missing = append(missing, as)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: the JetStream store in %s holds encrypted streams the server could not decrypt (%v): set the key they were written with (%s)",
			ErrStoreKey, dir, missing, ar.keySetting())
	}
	return nil
}

// recordStore writes what the store is now encrypted with.
func recordStore(dir string, ar AtRest) error {
	rec := storeKeyRecord{Encrypted: ar.Key != ""}
	if rec.Encrypted {
		rec.KeyCheck = keyCheck(ar.Key)
		rec.Cipher = ar.Cipher.String()
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, storeKeyFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("record jetstream encryption: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, storeKeyFile)); err != nil {
		return fmt.Errorf("record jetstream encryption: %w", err)
	}
	return nil
}
