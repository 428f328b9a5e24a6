package api

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate in a pair of PEM files and reads
// them again when either changes, so a renewed certificate (cert-manager,
// certbot) takes effect without a restart. A pair that fails to load after
// a change is logged and the previous certificate kept: a half-written
// renewal must not take the API down.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu       sync.Mutex
	cert     *tls.Certificate
	certMod  time.Time
	keyMod   time.Time
	lastStat time.Time
}

// statInterval bounds how often a handshake looks at the files' times.
const statInterval = time.Second

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) load() error {
	cm, km, err := r.modTimes()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.certMod, r.keyMod = &cert, cm, km
	return nil
}

func (r *certReloader) modTimes() (cert, key time.Time, err error) {
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return cert, key, fmt.Errorf("TLS certificate: %w", err)
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return cert, key, fmt.Errorf("TLS key: %w", err)
	}
	return ci.ModTime(), ki.ModTime(), nil
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.lastStat) < statInterval {
		return r.cert, nil
	}
	r.lastStat = now
	cm, km, err := r.modTimes()
	if err != nil {
		r.log.Warn("TLS certificate files unreadable; serving the loaded certificate", "error", err)
		return r.cert, nil
	}
	if cm.Equal(r.certMod) && km.Equal(r.keyMod) {
		return r.cert, nil
	}
	if err := r.load(); err != nil {
		r.log.Warn("TLS certificate changed but does not load; serving the previous one", "error", err)
		return r.cert, nil
	}
	r.log.Info("TLS certificate reloaded", "cert", r.certFile)
	return r.cert, nil
}

// tlsConfig is the server's TLS configuration: TLS 1.2 and later, Go's
// default cipher suites (all with forward secrecy for 1.2).
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}
}
