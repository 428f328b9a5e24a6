// Package pgcatalog checks a PostgreSQL database before Rosetta relies on
// it: that it can be reached, that a source has wal_level=logical and a user
// allowed to replicate, and that a pipeline's tables exist and can be
// replicated (a primary key or REPLICA IDENTITY FULL).
//
// Every failure an admin can fix is a *Problem whose message says what to
// do; it never contains the password.
package pgcatalog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rosettacdc/rosetta/pkg/pglink"
)

// Problem is a check that failed for a reason the admin can fix. Field
// names the input field at fault when there is one ("host", "password",
// "tables").
type Problem struct {
	Field string
	Msg   string
}

func (p *Problem) Error() string { return p.Msg }

// Endpoint is where to connect.
type Endpoint struct {
	Host     string
	Port     int
	Database string
	User     string
	Password string
	// Security is the link's TLS and accepted authentication methods.
	Security pglink.Security
}

// ConnConfig builds a pgx config for e. The password is set on the parsed
// config, never put into a connection string, so no parse error can
// echo it.
func (e Endpoint) ConnConfig() (*pgx.ConnConfig, error) {
	kv := []string{
		"host=" + quoteValue(e.Host),
		"port=" + strconv.Itoa(e.Port),
		"dbname=" + quoteValue(e.Database),
		"user=" + quoteValue(e.User),
		// TLS comes from e.Security, applied below.
		"sslmode=disable",
		"application_name=rosetta",
	}
	cfg, err := pgx.ParseConfig(strings.Join(kv, " "))
	if err != nil {
		return nil, err
	}
	cfg.Password = e.Password
	if err := e.Security.Apply(&cfg.Config); err != nil {
		return nil, err
	}
	return cfg, nil
}

// quoteValue quotes a keyword/value connection string value.
func quoteValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// Connect opens a connection to e. When the database cannot be reached it
// returns a *Problem naming the likely field (host, port, user, password,
// database) and the reason, with the password removed. ctx bounds the
// attempt; callers set a timeout.
func Connect(ctx context.Context, e Endpoint) (*pgx.Conn, error) {
	cfg, err := e.ConnConfig()
	var fe *pglink.FieldError
	if errors.As(err, &fe) {
		return nil, &Problem{Field: fe.Field, Msg: scrub(fe.Msg, e.Password)}
	}
	if err != nil {
		return nil, &Problem{Field: "host", Msg: scrub("invalid connection settings: "+err.Error(), e.Password)}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, unreachable(e, err)
	}
	return conn, nil
}

func unreachable(e Endpoint, err error) *Problem {
	where := fmt.Sprintf("%s:%d/%s", e.Host, e.Port, e.Database)
	field := "host"
	reason := err.Error()
	var pe *pgconn.PgError
	var ne net.Error
	if field, hint := pglink.Refusal(err); hint != "" {
		return &Problem{Field: field, Msg: scrub(fmt.Sprintf("cannot connect to PostgreSQL at %s: %s: %s", where, reason, hint), e.Password)}
	}
	switch {
	case errors.As(err, &pe):
		reason = pe.Message
		switch pe.Code {
		case "28P01": // invalid_password
			field = "password"
			reason = fmt.Sprintf("password authentication failed for user %q", e.User)
		case "28000": // invalid_authorization_specification (pg_hba, unknown role)
			field = "user"
		case "3D000": // invalid_catalog_name
			field = "database"
		case "53300": // too_many_connections
			field = ""
		}
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		reason = "timed out connecting"
	default:
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			reason = "host not found: " + dnsErr.Name
		} else if opErr := new(net.OpError); errors.As(err, &opErr) && opErr.Err != nil {
			reason = opErr.Err.Error()
		}
	}
	return &Problem{Field: field, Msg: scrub(fmt.Sprintf("cannot reach PostgreSQL at %s: %s", where, reason), e.Password)}
}

// scrub removes password from msg, in case a driver or server ever echoes
// it.
func scrub(msg, password string) string {
	if password == "" {
		return msg
	}
	return strings.ReplaceAll(msg, password, "********")
}
