// Package redisconn makes the Redis client of the services from
// ROSETTA_REDIS_URL and the ROSETTA_REDIS_* credentials and TLS settings,
// checks it once at start and explains a refusal with the setting to fix.
// A URL is only ever shown redacted.
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rosettacdc/rosetta/pkg/settings"
)

// Options turns the URL and auth settings into client options: the
// credentials from the settings, TLS (rediss://) checked against
// a.TLSCA or the system's CAs, with a client certificate when given.
func Options(rawURL string, a settings.RedisAuth) (*redis.Options, error) {
	if err := settings.ValidateRedis(rawURL, a); err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", settings.EnvRedisURL, RedactURL(rawURL), redactError(err, rawURL))
	}
	if a.Password != "" {
		// A user named only in the URL (redis://rosetta@host) stays.
		opt.Password = a.Password
		if a.User != "" {
			opt.Username = a.User
		}
	}
	if opt.TLSConfig == nil {
		return opt, nil
	}
	opt.TLSConfig.MinVersion = tls.VersionTLS12
	if a.TLSCA != "" {
		pem, err := os.ReadFile(a.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read the CA file: %w (set it to a readable PEM file of the CA that signed the Redis server's certificate)", settings.EnvRedisTLSCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s=%s: no PEM certificate in it (set it to the CA certificate that signed the Redis server's)", settings.EnvRedisTLSCA, a.TLSCA)
		}
		opt.TLSConfig.RootCAs = pool
	}
	if a.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %w", settings.EnvRedisTLSCert, settings.EnvRedisTLSKey, err)
		}
		opt.TLSConfig.Certificates = []tls.Certificate{cert}
	}
	return opt, nil
}

// Open makes the client and pings the server once. A refusal that
// settings must fix (certificate, TLS on one side only, user or password,
// permissions) is returned as an error saying what to fix; an unreachable
// server is only logged, since Redis may start after the services and the
// client connects when it needs to.
func Open(ctx context.Context, rawURL string, a settings.RedisAuth, log *slog.Logger) (*redis.Client, error) {
	opt, err := Options(rawURL, a)
	if err != nil {
		return nil, err
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = c.Ping(ctx).Err()
	if err == nil {
		return c, nil
	}
	err = Explain(err, RedactURL(rawURL), a)
	if errors.Is(err, ErrUnreachable) && opt.TLSConfig != nil && tcpAnswers(opt.Addr) {
		// A plain Redis reads a TLS hello as the start of an inline
		// command and waits for the rest: the handshake times out.
		c.Close()
		return nil, fmt.Errorf("redis at %s accepts connections but completed no TLS handshake: it does not speak TLS on this port; use a redis:// URL, or enable tls-port on the server: %w",
			RedactURL(rawURL), err)
	}
	if errors.Is(err, ErrUnreachable) {
		log.Warn("redis does not answer yet; dead letters wait until it does", "redis", RedactURL(rawURL), "error", err)
		return c, nil
	}
	c.Close()
	return nil, err
}

// tcpAnswers reports whether addr accepts a TCP connection.
func tcpAnswers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// ErrUnreachable marks a failure to reach the server at all (refused,
// timed out, no route): not a settings problem.
var ErrUnreachable = errors.New("redis unreachable")

// Explain classifies a connection or command error of the server at
// where (a redacted URL) into a message naming the setting to fix.
func Explain(err error, where string, a settings.RedisAuth) error {
	msg := err.Error()
	user := a.User
	if user == "" {
		user = "default"
	}
	var unknownCA x509.UnknownAuthorityError
	var host x509.HostnameError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"):
		return fmt.Errorf("redis at %s refused user %q: wrong password, unknown user or user off; check %s and %s against the server's ACL (ACL LIST; docs/dlq.md): %w",
			where, user, settings.EnvRedisUser, settings.EnvRedisPassword, err)
	case strings.HasPrefix(msg, "NOAUTH"):
		return fmt.Errorf("redis at %s requires authentication: set %s and %s (or %s_FILE): %w",
			where, settings.EnvRedisUser, settings.EnvRedisPassword, settings.EnvRedisPassword, err)
	case strings.HasPrefix(msg, "NOPERM"):
		return fmt.Errorf("redis at %s: user %q lacks a permission Rosetta needs; grant the commands and keys listed in docs/dlq.md: %w", where, user, err)
	case errors.As(err, &unknownCA), errors.As(err, &verify) && errors.As(verify.Err, &unknownCA):
		return fmt.Errorf("redis at %s: its certificate is not signed by a trusted CA; set %s to the CA that signed it: %w", where, settings.EnvRedisTLSCA, err)
	case errors.As(err, &host):
		return fmt.Errorf("redis at %s: its certificate is not for this host name; connect by a name the certificate holds: %w", where, err)
	case errors.As(err, &verify):
		return fmt.Errorf("redis at %s: its certificate does not verify (%s): %w", where, settings.EnvRedisTLSCA, err)
	case errors.As(err, &record):
		return fmt.Errorf("redis at %s does not speak TLS on this port: use a redis:// URL, or enable tls-port on the server: %w", where, err)
	case errors.As(err, &alert), strings.Contains(msg, "tls: "):
		return fmt.Errorf("redis at %s refused the TLS handshake; if it verifies clients (tls-auth-clients) set %s and %s: %w",
			where, settings.EnvRedisTLSCert, settings.EnvRedisTLSKey, err)
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("redis at %s closed the connection before answering: if it accepts only TLS, use a rediss:// URL (with %s): %w",
			where, settings.EnvRedisTLSCA, err)
	}
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, where, err)
	}
	return fmt.Errorf("redis at %s: %w", where, err)
}

// RedactURL is a Redis URL fit for a log or an error: any user
// information is replaced.
func RedactURL(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		// Unparsable: whatever precedes the last @ may be a secret.
		return "REDACTED@" + raw[strings.LastIndex(raw, "@")+1:]
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	return u.String()
}

// redactError is err's message with rawURL's credentials replaced.
func redactError(err error, rawURL string) error {
	msg := strings.ReplaceAll(err.Error(), rawURL, RedactURL(rawURL))
	if u, uerr := url.Parse(rawURL); uerr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "REDACTED")
		}
	} else if i := strings.LastIndex(rawURL, "@"); i > 0 {
		msg = strings.ReplaceAll(msg, rawURL[:i], "REDACTED")
	}
	return errors.New(msg)
}
