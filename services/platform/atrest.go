package platform

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

// embeddedAtRest resolves how the embedded JetStream encrypts its files:
// ROSETTA_JETSTREAM_KEY when set, else a key derived from
// ROSETTA_SECRET_KEY under a label of its own, so `rosetta dev` encrypts
// without a step; nothing with ROSETTA_JETSTREAM_ENCRYPTION=off.
func embeddedAtRest(s *settings.Settings) (natsx.AtRest, error) {
	ar := natsx.AtRest{Cipher: server.AES}
	if s.JetStreamCipher == settings.CipherChaCha {
		ar.Cipher = server.ChaCha
	}
	if !s.JetStreamEncryption {
		ar.KeySetting = settings.EnvJSEncryption + "=on with " + settings.EnvJSKey + " or " + settings.EnvSecretKey
		return ar, nil
	}
	if s.JetStreamKey != "" {
		ar.Key, ar.PreviousKey = s.JetStreamKey, s.JetStreamKeyPrevious
		ar.KeySetting = settings.EnvJSKey
		return ar, nil
	}
	var err error
	if ar.Key, err = secrets.JetStreamKey(s.SecretKey); err != nil {
		return ar, fmt.Errorf("jetstream key from %s: %w", settings.EnvSecretKey, err)
	}
	// A rotation of ROSETTA_SECRET_KEY rotates the derived key with it:
	// the server opens what the old one wrote and re-encrypts it.
	if s.SecretKeyPrevious != "" {
		if ar.PreviousKey, err = secrets.JetStreamKey(s.SecretKeyPrevious); err != nil {
			return ar, fmt.Errorf("jetstream key from %s: %w", settings.EnvSecretPrev, err)
		}
	}
	ar.KeySetting = settings.EnvSecretKey + " (the key is derived from it), or " + settings.EnvJSKey
	return ar, nil
}
