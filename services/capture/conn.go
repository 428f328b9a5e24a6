package capture

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// sessionParams pin the settings that shape PostgreSQL's text output of
// values, which is what change events carry: pgoutput formats values in
// the walsender with the replication connection's settings, so without
// these a server's TimeZone or DateStyle would leak into the contract.
var sessionParams = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, MDY",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "1",
	"bytea_output":       "hex",
	// money's text (symbol, separators, fraction digits) follows
	// lc_monetary; C makes it the same whatever the source's locale, and
	// the PostgreSQL destination reads it under C too.
	"lc_monetary":      "C",
	"application_name": "rosetta-capture",
}

// dialKeepAlive dials with TCP keepalives that find a source which vanished
// without closing the connection (a dead host, a dropped NAT entry) within
// about 30s of silence instead of the kernel's two hours. A connection that
// still answers TCP but carries nothing (a stuck proxy) is caught by
// Config.ReceiveTimeout.
func dialKeepAlive(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3,
	}}
	return d.DialContext(ctx, network, addr)
}

// sourceURL is the connection URL of a source. It holds the password: it
// is never logged or put in an error.
func sourceURL(s configstore.Source, timeout time.Duration) string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(s.User, s.Password),
		Host:   net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:   "/" + s.Database,
	}
	q := url.Values{}
	if s.SSLMode != "" {
		q.Set("sslmode", s.SSLMode)
	}
	q.Set("connect_timeout", strconv.Itoa(max(int(timeout/time.Second), 1)))
	u.RawQuery = q.Encode()
	return u.String()
}

// queryConfig is the normal connection of a worker: catalog lookups and
// slot and publication management.
func queryConfig(s configstore.Source, timeout time.Duration) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(sourceURL(s, timeout))
	if err != nil {
		// The parse error may quote the URL; say only what is wrong where.
		return nil, fmt.Errorf("source %d connection settings (host %s, port %d, database %s, sslmode %q) do not parse",
			s.ID, s.Host, s.Port, s.Database, s.SSLMode)
	}
	cfg.RuntimeParams["application_name"] = sessionParams["application_name"]
	cfg.DialFunc = dialKeepAlive
	return cfg, nil
}

// replicationConfig is the logical replication connection of a worker.
func replicationConfig(s configstore.Source, timeout time.Duration) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(sourceURL(s, timeout))
	if err != nil {
		return nil, fmt.Errorf("source %d connection settings (host %s, port %d, database %s, sslmode %q) do not parse",
			s.ID, s.Host, s.Port, s.Database, s.SSLMode)
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.DialFunc = dialKeepAlive
	return cfg, nil
}

// redact removes a password from a message bound for a log or the config
// store. Drivers do not put passwords in errors, but a server's message
// might echo what it was sent.
func redact(msg, password string) string {
	if len(password) >= 3 {
		msg = strings.ReplaceAll(msg, password, "[redacted]")
		if esc := url.QueryEscape(password); esc != password {
			msg = strings.ReplaceAll(msg, esc, "[redacted]")
		}
	}
	return msg
}
