package settings

import (
	"errors"
	"fmt"
	"strings"
)

// Environment variables of how a client authenticates to an external NATS
// (ROSETTA_NATS_URL). Each secret can be given as NAME_FILE.
const (
	EnvNATSCreds    = "ROSETTA_NATS_CREDS"
	EnvNATSNKeySeed = "ROSETTA_NATS_NKEY_SEED"
	EnvNATSUser     = "ROSETTA_NATS_USER"
	EnvNATSPassword = "ROSETTA_NATS_PASSWORD"
	EnvNATSToken    = "ROSETTA_NATS_TOKEN"
	EnvNATSTLSCA    = "ROSETTA_NATS_TLS_CA"
	EnvNATSCert     = "ROSETTA_NATS_TLS_CERT"
	EnvNATSKey      = "ROSETTA_NATS_TLS_KEY"
	EnvNATSInbox    = "ROSETTA_NATS_INBOX_PREFIX"
)

// NATSAuth is how a service, `rosetta tail` or another client proves who it
// is to an external NATS and checks the server: at most one identity
// (credentials file, nkey seed, user and password, or token) and TLS. With
// per-role users (deploy/nats/auth.conf) each service gets its own.
type NATSAuth struct {
	// CredsFile is a NATS credentials file (user JWT and nkey seed).
	CredsFile string
	// NKeySeed is an nkey user seed (SU...).
	NKeySeed string
	// User and Password authenticate as a configured user.
	User, Password string
	// Token is an authorization token.
	Token string
	// TLSCA is a PEM file of the CAs that sign the server's certificate;
	// set, the client requires TLS and checks the server against them.
	TLSCA string
	// TLSCert and TLSKey are the client's certificate and key (PEM), for
	// servers that verify clients.
	TLSCert, TLSKey string
	// InboxPrefix replaces nats.go's "_INBOX" as the prefix of the
	// client's reply subjects (request replies, JetStream API answers,
	// fetched messages). With a prefix per role, a server can allow each
	// user to subscribe to its own replies only (deploy/nats/auth.conf:
	// _INBOX_rosetta_<role>), so one role cannot read another's.
	InboxPrefix string
}

// IsZero reports whether nothing is set: the client connects with what the
// URL holds.
func (a NATSAuth) IsZero() bool { return a == NATSAuth{} }

// LoadNATSAuth reads NATSAuth from the environment; programs that do not
// load every setting (rosetta tail, tools) use it alone.
func LoadNATSAuth() (NATSAuth, error) {
	a, err := loadNATSAuth()
	if err != nil {
		return a, err
	}
	return a, a.Validate()
}

func loadNATSAuth() (NATSAuth, error) {
	var a NATSAuth
	var errs []error
	for _, f := range []struct {
		env string
		dst *string
	}{
		{EnvNATSCreds, &a.CredsFile}, {EnvNATSNKeySeed, &a.NKeySeed}, {EnvNATSUser, &a.User},
		{EnvNATSPassword, &a.Password}, {EnvNATSToken, &a.Token}, {EnvNATSTLSCA, &a.TLSCA},
		{EnvNATSCert, &a.TLSCert}, {EnvNATSKey, &a.TLSKey}, {EnvNATSInbox, &a.InboxPrefix},
	} {
		v, _, err := lookupEnv(f.env)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*f.dst = v
	}
	return a, errors.Join(errs...)
}

// Validate checks that at most one identity is set and that the pieces of
// each go together.
func (a NATSAuth) Validate() error {
	var errs []error
	var ids []string
	if a.CredsFile != "" {
		ids = append(ids, EnvNATSCreds)
	}
	if a.NKeySeed != "" {
		ids = append(ids, EnvNATSNKeySeed)
	}
	if a.User != "" || a.Password != "" {
		ids = append(ids, EnvNATSUser+"/"+EnvNATSPassword)
	}
	if a.Token != "" {
		ids = append(ids, EnvNATSToken)
	}
	if len(ids) > 1 {
		errs = append(errs, fmt.Errorf("%v are all set: a NATS client has one identity, set one of them", ids))
	}
	if (a.User == "") != (a.Password == "") {
		errs = append(errs, fmt.Errorf("%s and %s go together: set both or neither", EnvNATSUser, EnvNATSPassword))
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		errs = append(errs, fmt.Errorf("%s and %s go together: set both or neither", EnvNATSCert, EnvNATSKey))
	}
	if a.InboxPrefix != "" && !validInboxPrefix(a.InboxPrefix) {
		errs = append(errs, fmt.Errorf("%s=%q: want subject tokens without wildcards, spaces or an empty token (e.g. _INBOX_rosetta_sink)", EnvNATSInbox, a.InboxPrefix))
	}
	return errors.Join(errs...)
}

// validInboxPrefix reports whether p can start a subject: dot-separated
// tokens, none empty, no wildcard or whitespace.
func validInboxPrefix(p string) bool {
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return false
		}
	}
	return true
}
