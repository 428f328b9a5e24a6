package capture

import (
	"context"
	"fmt"
	"net"
	"net/url"
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

// sourceConnString is a source's connection string without its password
// (set on the parsed config, so no parse error can echo it) and without
// TLS, which applySecurity sets from the source's settings.
func sourceConnString(s configstore.Source, timeout time.Duration) string {
	q := func(v string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'" }
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=disable connect_timeout=%d",
		q(s.Host), s.Port, q(s.Database), q(s.User), max(int(timeout/time.Second), 1))
}

// applySecurity sets the password and the source's TLS and accepted
// authentication methods on cfg: the replication connection is protected
// exactly as the query connection is.
func applySecurity(s configstore.Source, cfg *pgconn.Config) error {
	cfg.Password = s.Password
	if err := s.Security().Apply(cfg); err != nil {
		return fmt.Errorf("source %d: %s", s.ID, redact(err.Error(), s.Password))
	}
	return nil
}

// connectQuery opens the normal connection of a worker to s, bounded by
// timeout: the session's, and a standby's look at the slot.
func connectQuery(ctx context.Context, s configstore.Source, timeout time.Duration) (*pgx.Conn, error) {
	qcfg, err := queryConfig(s, timeout)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return pgx.ConnectConfig(cctx, qcfg)
}

// closeConn closes a connection (a query or a replication one), giving the
// goodbye 5 s whatever the worker's context.
func closeConn(conn interface{ Close(context.Context) error }) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// queryConfig is the normal connection of a worker: catalog lookups and
// slot and publication management.
func queryConfig(s configstore.Source, timeout time.Duration) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(sourceConnString(s, timeout))
	if err != nil {
		return nil, fmt.Errorf("source %d connection settings (host %s, port %d, database %s) do not parse",
			s.ID, s.Host, s.Port, s.Database)
	}
	if err := applySecurity(s, &cfg.Config); err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = sessionParams["application_name"]
	cfg.DialFunc = dialKeepAlive
	return cfg, nil
}

// replicationConfig is the logical replication connection of a worker.
func replicationConfig(s configstore.Source, timeout time.Duration) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(sourceConnString(s, timeout))
	if err != nil {
		return nil, fmt.Errorf("source %d connection settings (host %s, port %d, database %s) do not parse",
			s.ID, s.Host, s.Port, s.Database)
	}
	if err := applySecurity(s, cfg); err != nil {
		return nil, err
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
