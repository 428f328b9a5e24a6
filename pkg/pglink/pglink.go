// Package pglink holds what protects a connection to a PostgreSQL source or
// destination: TLS (sslmode up to verify-full, a private CA, a client
// certificate) and which authentication methods the client accepts
// (require_auth, channel_binding). Every connection Rosetta opens to a
// source or a destination (API checks, capture's query and replication
// connections, backfill, the WAL monitor, the sink) applies the same
// Security, so one setting protects every link to that database.
//
// Certificates and keys are given as PEM text or as a file path. The TLS
// configuration is built here from those bytes rather than by pgx from
// file names, so PEM text never has to be written to disk and a path is
// read only after the caller confined it (ROSETTA_KEYS_DIR).
package pglink

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// SSLModes are libpq's sslmode values, weakest first.
var SSLModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// ChannelBindings are libpq's channel_binding values.
var ChannelBindings = []string{"disable", "prefer", "require"}

// DefaultSSLMode is the sslmode of a new source or destination that names
// none. prefer encrypts whenever the server offers TLS and still connects
// to one that does not (a laptop, a container next door), so a first
// pipeline works everywhere; it does not verify the server and can be
// downgraded by someone on the path, which is why docs/security.md asks for
// verify-full in production.
const DefaultSSLMode = "prefer"

// Security is the transport and authentication settings of one link.
type Security struct {
	// SSLMode is libpq's sslmode; "" means DefaultSSLMode.
	SSLMode string `json:"sslmode,omitempty"`
	// RootCert is the CA that signed the server's certificate (PEM text or
	// a file path); "" means the system's CAs. With it, require verifies
	// the chain as verify-ca does (libpq's rule).
	RootCert string `json:"sslrootcert,omitempty"`
	// ClientCert and ClientKey are a client certificate and its key (PEM
	// text or file paths) for servers that authenticate clients by
	// certificate (pg_hba "cert" or clientcert=verify-full). ClientKey is a
	// secret.
	ClientCert string `json:"sslcert,omitempty"`
	ClientKey  string `json:"-"`
	// RequireAuth is libpq's require_auth: the authentication methods the
	// client accepts ("scram-sha-256" refuses a server that asks for a
	// cleartext or MD5 password); "" accepts any.
	RequireAuth string `json:"require_auth,omitempty"`
	// ChannelBinding is libpq's channel_binding; require makes SCRAM bind
	// to the TLS channel, so a man in the middle cannot relay the login.
	ChannelBinding string `json:"channel_binding,omitempty"`
}

// FieldError is a setting that cannot be used, naming its field (sslmode,
// sslrootcert, sslcert, sslkey, require_auth, channel_binding).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// IsPEM reports whether v is PEM text rather than a file path.
func IsPEM(v string) bool { return strings.Contains(v, "-----BEGIN ") }

// Mode is the effective sslmode.
func (s Security) Mode() string {
	if s.SSLMode == "" {
		return DefaultSSLMode
	}
	return s.SSLMode
}

// Validate checks the values without reading files or connecting: the
// names are known, a certificate and its key come together, and a mode
// that sends no TLS is not combined with settings that need it. PEM text
// is parsed, so a pasted certificate that is not one is refused here.
func (s Security) Validate() error {
	if !oneOf(s.Mode(), SSLModes) {
		return fieldErr("sslmode", "sslmode %q must be one of %s", s.SSLMode, strings.Join(SSLModes, ", "))
	}
	if s.ChannelBinding != "" && !oneOf(s.ChannelBinding, ChannelBindings) {
		return fieldErr("channel_binding", "channel_binding %q must be one of %s", s.ChannelBinding, strings.Join(ChannelBindings, ", "))
	}
	if s.RequireAuth != "" {
		// pgconn's own parser, so the accepted lists are exactly what
		// the driver enforces (e.g. "scram-sha-256", "!password,!md5").
		if _, err := pgconn.ParseConfig("host=localhost sslmode=disable require_auth=" + quote(s.RequireAuth)); err != nil {
			return fieldErr("require_auth", "require_auth %q is not a list of methods (password, md5, gss, sspi, scram-sha-256, none, or all of them negated with !): %v", s.RequireAuth, errors.Unwrap(err))
		}
	}
	if (s.ClientCert == "") != (s.ClientKey == "") {
		field := "sslkey"
		if s.ClientCert == "" {
			field = "sslcert"
		}
		return fieldErr(field, "sslcert and sslkey go together: a client certificate needs its key, and the key its certificate")
	}
	if s.Mode() == "disable" {
		switch {
		case s.RootCert != "":
			return fieldErr("sslrootcert", "sslrootcert needs TLS: set sslmode to verify-full (or verify-ca, require), or remove sslrootcert")
		case s.ClientCert != "":
			return fieldErr("sslcert", "a client certificate needs TLS: set sslmode to verify-full (or verify-ca, require), or remove sslcert and sslkey")
		case s.ChannelBinding == "require":
			return fieldErr("channel_binding", "channel_binding=require needs TLS: set sslmode to verify-full, or use channel_binding prefer")
		}
	}
	for _, f := range []struct{ field, v, what string }{
		{"sslrootcert", s.RootCert, "CERTIFICATE"}, {"sslcert", s.ClientCert, "CERTIFICATE"}, {"sslkey", s.ClientKey, "PRIVATE KEY"},
	} {
		if f.v != "" && IsPEM(f.v) {
			if err := checkPEM(f.field, []byte(f.v)); err != nil {
				return err
			}
		}
	}
	if s.ClientCert != "" && IsPEM(s.ClientCert) && IsPEM(s.ClientKey) {
		if _, err := tls.X509KeyPair([]byte(s.ClientCert), []byte(s.ClientKey)); err != nil {
			return fieldErr("sslkey", "sslkey does not match sslcert (or one of them does not parse): send the key of that certificate, unencrypted, as PEM")
		}
	}
	return nil
}

// Paths are the settings that name files (field -> path), for the caller
// to confine to a directory before anything reads them.
func (s Security) Paths() map[string]string {
	m := map[string]string{}
	for field, v := range map[string]string{"sslrootcert": s.RootCert, "sslcert": s.ClientCert, "sslkey": s.ClientKey} {
		if v != "" && !IsPEM(v) {
			m[field] = v
		}
	}
	return m
}

// Apply sets cfg's TLS (the first attempt and, for allow and prefer, the
// fallback), accepted authentication methods and channel binding. cfg must
// come from a connection string with sslmode=disable, so that pgx added no
// fallbacks and read no certificate files of its own; Apply replaces
// whatever TLS settings cfg had.
func (s Security) Apply(cfg *pgconn.Config) error {
	if err := s.Validate(); err != nil {
		return err
	}
	configs, err := s.tlsConfigs(cfg.Host)
	if err != nil {
		return err
	}
	cfg.TLSConfig = configs[0]
	cfg.Fallbacks = nil
	for _, c := range configs[1:] {
		cfg.Fallbacks = append(cfg.Fallbacks, &pgconn.FallbackConfig{Host: cfg.Host, Port: cfg.Port, TLSConfig: c})
	}
	cfg.RequireAuth = s.RequireAuth
	cfg.ChannelBinding = s.ChannelBinding
	if cfg.ChannelBinding == "" {
		cfg.ChannelBinding = "prefer"
	}
	return nil
}

// tlsConfigs follows libpq's sslmode: the configurations tried in order
// (nil is a plain connection).
func (s Security) tlsConfigs(host string) ([]*tls.Config, error) {
	mode := s.Mode()
	if mode == "disable" {
		return []*tls.Config{nil}, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	// SNI only for names (RFC 6066); verify-full below checks IPs too.
	if net.ParseIP(host) == nil {
		c.ServerName = host
	}
	var roots *x509.CertPool
	if s.RootCert != "" {
		pemBytes, err := material("sslrootcert", s.RootCert)
		if err != nil {
			return nil, err
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pemBytes) {
			return nil, fieldErr("sslrootcert", "sslrootcert holds no PEM certificate")
		}
	}
	if s.ClientCert != "" {
		certPEM, err := material("sslcert", s.ClientCert)
		if err != nil {
			return nil, err
		}
		keyPEM, err := material("sslkey", s.ClientKey)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fieldErr("sslkey", "sslcert and sslkey do not form a key pair (an encrypted key is not supported): %v", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	switch {
	case mode == "verify-full":
		c.RootCAs = roots
		c.ServerName = host
	case mode == "verify-ca" || (mode == "require" && roots != nil):
		// The chain is checked, the host name is not (libpq's verify-ca).
		c.InsecureSkipVerify = true
		c.VerifyPeerCertificate = verifyChain(roots)
	default: // allow, prefer, require without a CA: encryption only.
		c.InsecureSkipVerify = true
	}
	switch mode {
	case "allow":
		return []*tls.Config{nil, c}, nil
	case "prefer":
		return []*tls.Config{c, nil}, nil
	}
	return []*tls.Config{c}, nil
}

// verifyChain checks the server's chain against roots (the system's when
// nil) without checking its name.
func verifyChain(roots *x509.CertPool) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("server sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		var leaf *x509.Certificate
		for i, der := range raw {
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return fmt.Errorf("server certificate does not parse: %w", err)
			}
			if i == 0 {
				leaf = cert
			} else {
				opts.Intermediates.AddCert(cert)
			}
		}
		_, err := leaf.Verify(opts)
		return err
	}
}

// material is v's PEM bytes: v itself, or the file it names.
func material(field, v string) ([]byte, error) {
	if IsPEM(v) {
		return []byte(v), nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		// The path is the admin's input, not a secret.
		return nil, fieldErr(field, "%s: cannot read %s: %v", field, v, errors.Unwrap(err))
	}
	return b, nil
}

func checkPEM(field string, b []byte) error {
	found := false
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		found = true
		if strings.Contains(block.Type, "ENCRYPTED") || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return fieldErr(field, "%s is an encrypted key: send it unencrypted (it is stored sealed)", field)
		}
	}
	if !found {
		return fieldErr(field, "%s looks like PEM but holds no PEM block: paste the whole file, BEGIN and END lines included", field)
	}
	if field != "sslkey" {
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			return fieldErr(field, "%s holds no X.509 certificate", field)
		}
	}
	return nil
}

func oneOf(v string, set []string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

// quote quotes a keyword/value connection string value.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// Hint says what to change when err is a refusal this package's settings
// caused (a certificate that does not verify, an authentication method or
// channel binding that was not accepted); "" otherwise. Callers append it
// to the driver's message, which says what happened but not which
// setting decides it.
func Hint(err error) string {
	_, hint := Refusal(err)
	return hint
}

// Refusal is Hint with the setting the refusal is about: "host",
// "sslrootcert", "require_auth", "channel_binding" or "sslmode" (for an
// API error's field); both "" when err is no such refusal.
func Refusal(err error) (field, hint string) {
	if err == nil {
		return "", ""
	}
	var host x509.HostnameError
	var authority x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	msg := err.Error()
	switch {
	case errors.As(err, &host):
		return "host", "the server's certificate does not name the host connected to (sslmode verify-full): connect by a name the certificate holds, or have the server's certificate reissued for this host"
	case errors.As(err, &authority):
		return "sslrootcert", "the server's certificate is not signed by a trusted CA: set sslrootcert to the CA that signed it"
	case errors.As(err, &invalid):
		return "sslrootcert", "the server's certificate is not valid (expired, or not for a server): have it reissued"
	case strings.Contains(msg, "authentication method requirement"):
		return "require_auth", "the server asked for an authentication method require_auth does not allow: have the server use it (pg_hba.conf, password_encryption = scram-sha-256 and the password set again), or change require_auth"
	case strings.Contains(msg, "channel binding"):
		return "channel_binding", "channel_binding=require needs SCRAM over TLS: have the server use scram-sha-256 for this user over hostssl, or change channel_binding"
	case strings.Contains(msg, "server refused TLS"):
		return "sslmode", "the server does not offer TLS: turn on ssl on the server, or lower sslmode"
	}
	return "", ""
}
