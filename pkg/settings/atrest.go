package settings

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/cpu"
)

// Environment variables of JetStream's encryption at rest in the embedded
// NATS server. A NATS server of its own (ROSETTA_NATS_URL) encrypts with
// its own configuration (deploy/nats/nats-server.conf).
const (
	EnvJSEncryption = "ROSETTA_JETSTREAM_ENCRYPTION"
	EnvJSKey        = "ROSETTA_JETSTREAM_KEY"
	EnvJSKeyPrev    = "ROSETTA_JETSTREAM_KEY_PREVIOUS"
	EnvJSCipher     = "ROSETTA_JETSTREAM_CIPHER"
)

// JetStream ciphers, as the NATS server names them.
const (
	CipherChaCha = "chacha"
	CipherAES    = "aes"
)

// AtRest is how the embedded NATS server encrypts JetStream's files (the
// streams hold row data). Settings embeds it.
type AtRest struct {
	// JetStreamEncryption is on by default: with no key of its own the
	// key is derived from ROSETTA_SECRET_KEY (HKDF, a label of its own),
	// so `rosetta dev` encrypts without a step. Off writes plaintext.
	JetStreamEncryption bool
	// JetStreamKey is the key itself; empty derives it.
	JetStreamKey string
	// JetStreamKeyPrevious is the key before a rotation: the server opens
	// files written under it and re-encrypts them under JetStreamKey. With
	// a derived key, ROSETTA_SECRET_KEY_PREVIOUS plays this part.
	JetStreamKeyPrevious string
	// JetStreamCipher is aes (AES-GCM) or chacha (ChaCha20-Poly1305).
	// The default is aes where the CPU has AES and carry-less multiply
	// instructions (x86-64 AES-NI and PCLMULQDQ, arm64 AES and PMULL),
	// else chacha: with messages of many changes the server encrypts and
	// decrypts whole blocks, and in `make bench` (1M changes into
	// PostgreSQL) ChaCha20 without vector code was 11 % of rosetta dev's
	// CPU. The server converts a store written with the other cipher as
	// it loads it.
	JetStreamCipher string
}

// DefaultAtRest encrypts under a derived key with the cipher this CPU runs
// fastest (DefaultCipher).
func DefaultAtRest() AtRest {
	return AtRest{JetStreamEncryption: true, JetStreamCipher: DefaultCipher()}
}

// DefaultCipher is aes on CPUs with AES-GCM instructions, else chacha.
func DefaultCipher() string {
	if (cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ) || (cpu.ARM64.HasAES && cpu.ARM64.HasPMULL) {
		return CipherAES
	}
	return CipherChaCha
}

func (a *AtRest) load() error {
	var errs []error
	switch v := os.Getenv(EnvJSEncryption); v {
	case "":
	case "on", "true", "1":
		a.JetStreamEncryption = true
	case "off", "false", "0":
		a.JetStreamEncryption = false
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want on or off", EnvJSEncryption, v))
	}
	for _, f := range []struct {
		env string
		dst *string
	}{{EnvJSKey, &a.JetStreamKey}, {EnvJSKeyPrev, &a.JetStreamKeyPrevious}, {EnvJSCipher, &a.JetStreamCipher}} {
		v, ok, err := lookupEnv(f.env)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			*f.dst = v
		}
	}
	return errors.Join(errs...)
}

func (a AtRest) validate() error {
	var errs []error
	if a.JetStreamCipher != CipherChaCha && a.JetStreamCipher != CipherAES {
		errs = append(errs, fmt.Errorf("%s=%q: want %s or %s", EnvJSCipher, a.JetStreamCipher, CipherChaCha, CipherAES))
	}
	if !a.JetStreamEncryption && (a.JetStreamKey != "" || a.JetStreamKeyPrevious != "") {
		errs = append(errs, fmt.Errorf("%s=off and %s is set: unset the key, or turn encryption on", EnvJSEncryption, EnvJSKey))
	}
	if a.JetStreamKey != "" && len(a.JetStreamKey) < 16 {
		errs = append(errs, fmt.Errorf("%s is too short (%d characters): use at least 16 (e.g. `openssl rand -hex 32`)", EnvJSKey, len(a.JetStreamKey)))
	}
	if a.JetStreamKeyPrevious != "" && a.JetStreamKey == "" {
		errs = append(errs, fmt.Errorf("%s is set without %s: a rotation needs the new key too", EnvJSKeyPrev, EnvJSKey))
	}
	return errors.Join(errs...)
}
