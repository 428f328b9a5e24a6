package natsx

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/rosettacdc/rosetta/pkg/settings"
)

// AuthOptions are the nats.go options that authenticate as a and check the
// server's certificate. Files are read now, so a wrong path or a bad PEM
// fails at start with the setting that names it, not at the first connect.
func AuthOptions(a settings.NATSAuth) ([]nats.Option, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case a.CredsFile != "":
		if _, err := os.Stat(a.CredsFile); err != nil {
			return nil, fmt.Errorf("%s: %w", settings.EnvNATSCreds, err)
		}
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeySeed != "":
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(a.NKeySeed)))
		if err != nil {
			// The error never holds the seed itself.
			return nil, fmt.Errorf("%s: not an nkey seed: %w", settings.EnvNATSNKeySeed, err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", settings.EnvNATSNKeySeed, err)
		}
		if !nkeys.IsValidPublicUserKey(pub) {
			return nil, fmt.Errorf("%s: a user seed (SU...) is needed, not another kind of nkey", settings.EnvNATSNKeySeed)
		}
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	case a.Token != "":
		opts = append(opts, nats.Token(a.Token))
	}
	if a.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(a.InboxPrefix))
	}
	if a.TLSCA == "" && a.TLSCert == "" {
		return opts, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.TLSCA != "" {
		pem, err := os.ReadFile(a.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", settings.EnvNATSTLSCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s=%s: no PEM certificate in it", settings.EnvNATSTLSCA, a.TLSCA)
		}
		cfg.RootCAs = pool
	}
	if a.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %w", settings.EnvNATSCert, settings.EnvNATSKey, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return append(opts, nats.Secure(cfg)), nil
}

// RedactURL is a NATS URL (or a comma-separated list of them) fit for an
// error or a log: user information is replaced, since a token URL
// (nats://TOKEN@host) holds the secret where the user name goes.
func RedactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "@") {
			parts[i] = p
			continue
		}
		u, err := url.Parse(p)
		if err != nil || u.Host == "" {
			// Unparsable: whatever precedes the last @ may be a secret.
			parts[i] = "REDACTED@" + p[strings.LastIndex(p, "@")+1:]
			continue
		}
		if u.User != nil {
			u.User = url.User("REDACTED")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// redactedError is err with rawURL's user information redacted from its
// message; errors.Is still sees err (nats.ErrAuthorization and the like).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// RedactError removes rawURL's credentials from err's message: nats.go
// quotes the URL it failed to parse, for one.
func RedactError(err error, rawURL string) error {
	if err == nil {
		return nil
	}
	red := RedactURL(rawURL)
	if red == rawURL {
		return err
	}
	msg := err.Error()
	for _, p := range strings.Split(rawURL, ",") {
		if u, uerr := url.Parse(strings.TrimSpace(p)); uerr == nil && u.User != nil {
			msg = strings.ReplaceAll(msg, u.User.String(), "REDACTED")
			if pw, ok := u.User.Password(); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "REDACTED")
			} else if u.User.Username() != "" {
				// A token sits where the user name goes.
				msg = strings.ReplaceAll(msg, u.User.Username(), "REDACTED")
			}
		}
	}
	msg = strings.ReplaceAll(msg, rawURL, red)
	return &redactedError{msg: msg, err: err}
}
