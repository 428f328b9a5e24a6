package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a private certificate authority made for one test, for servers
// and clients that must verify each other over TLS (the API's listener,
// the fake Snowflake server, NATS, PostgreSQL, Redis).
type CA struct {
	Cert *x509.Certificate
	// CertPEM is the CA certificate, PEM-encoded; CertFile holds it.
	CertPEM  []byte
	CertFile string
	key      *ecdsa.PrivateKey
	dir      string
}

// NewCA makes a CA valid for an hour, its files in a temp dir of t.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testkit: CA key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rosetta test CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testkit: CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testkit: parse CA certificate: %v", err)
	}
	ca := &CA{Cert: cert, key: key, dir: t.TempDir()}
	ca.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	ca.CertFile = filepath.Join(ca.dir, "ca.pem")
	if err := os.WriteFile(ca.CertFile, ca.CertPEM, 0o644); err != nil {
		t.Fatalf("testkit: write CA certificate: %v", err)
	}
	return ca
}

// Pool is a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Leaf is a certificate the CA issued, with its key, as PEM files and as
// a tls.Certificate.
type Leaf struct {
	CertFile, KeyFile string
	CertPEM, KeyPEM   []byte
	TLS               tls.Certificate
}

// Issue makes a certificate for hosts (DNS names or IP addresses), usable
// by servers and clients, valid for an hour. name keeps the files of
// several leaves apart.
func (ca *CA) Issue(t testing.TB, name string, hosts ...string) Leaf {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testkit: %s key: %v", name, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("testkit: serial: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("testkit: %s certificate: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testkit: %s key: %v", name, err)
	}
	l := Leaf{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	l.CertFile = filepath.Join(ca.dir, name+".pem")
	l.KeyFile = filepath.Join(ca.dir, name+"-key.pem")
	if err := os.WriteFile(l.CertFile, l.CertPEM, 0o644); err != nil {
		t.Fatalf("testkit: write %s certificate: %v", name, err)
	}
	// 0600: PostgreSQL refuses a key file others can read.
	if err := os.WriteFile(l.KeyFile, l.KeyPEM, 0o600); err != nil {
		t.Fatalf("testkit: write %s key: %v", name, err)
	}
	if l.TLS, err = tls.X509KeyPair(l.CertPEM, l.KeyPEM); err != nil {
		t.Fatalf("testkit: %s key pair: %v", name, err)
	}
	return l
}
