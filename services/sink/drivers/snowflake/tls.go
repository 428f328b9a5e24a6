package snowflake

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// transport is the HTTP transport gosnowflake uses: nil (its own, which
// verifies the certificate against the system's roots and checks its
// revocation by OCSP) unless TLSCAFile names the CAs to trust instead. A
// private CA has no OCSP responder, so with TLSCAFile the revocation check
// is not made (gosnowflake skips it for a caller's transport).
func (c Config) transport() (http.RoundTripper, error) {
	if c.TLSCAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(c.TLSCAFile)
	if err != nil {
		return nil, fmt.Errorf("read tls_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls_ca_file %s holds no PEM certificate", c.TLSCAFile)
	}
	base, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("the default HTTP transport is not an *http.Transport")
	}
	t := base.Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t, nil
}

// certRefused reports whether err is a TLS certificate the client does not
// trust (unknown authority, wrong host name, expired).
func certRefused(err error) bool {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var tv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &tv)
}
