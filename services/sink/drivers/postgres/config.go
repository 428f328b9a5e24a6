// Package postgres is the sink driver that applies changes to a PostgreSQL
// destination: one transaction per fetched batch, staged with COPY and
// applied with a handful of set-based, version-guarded statements per table.
//
// Destination layout:
//   - each source table becomes <schema>.<table> (the source table's name in
//     the configured schema), created on first use with the source's key as
//     primary key and two version columns, _rosetta_lsn and _rosetta_seq
//     (commit LSN and position in the transaction of the last change applied
//     to the row);
//   - schema _rosetta holds the bookkeeping that makes redelivery safe:
//     _rosetta.tables (one row per destination table: its truncate
//     watermark, its collect floor and the name of its tombstone table) and
//     one tombstone table per destination table (key and version of deleted
//     rows, collected below the floor: collect.go).
package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/colmark"
	"github.com/rosettacdc/rosetta/pkg/pglink"
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
)

// Type describes the postgres destination type: the config fields the API
// accepts, with DefaultConfig's values as their defaults, and the driver's
// factory. It has no Check: the API connects to a postgres destination
// itself, as it does to a source, with the same checks and messages.
func Type() desttype.Type {
	d := DefaultConfig()
	return desttype.Type{
		Name: "postgres",
		Fields: []desttype.Field{
			{Name: "host", Required: true, Bound: true, Doc: "Host name or address of the destination PostgreSQL."},
			{Name: "port", Kind: desttype.Port, Default: d.Port, Bound: true},
			{Name: "database", Required: true, Bound: true},
			{Name: "user", Required: true, Bound: true},
			{Name: "password", Secret: true, Doc: "Write-only: stored encrypted, never shown."},
			{Name: "schema", Default: d.Schema, Doc: "Schema the tables are written to."},
			{Name: "sslmode", Default: d.SSLMode, OneOf: pglink.SSLModes, Bound: true, Doc: "TLS: verify-full checks the server's certificate and name (use it in production); the default prefer encrypts when the server offers TLS but verifies nothing."},
			{Name: "sslrootcert", PEM: true, Bound: true, Doc: "CA of the server's certificate: PEM text, or a file under ROSETTA_KEYS_DIR; without it the system's CAs."},
			{Name: "sslcert", PEM: true, Doc: "Client certificate (PEM text or a file under ROSETTA_KEYS_DIR) for servers that authenticate by certificate."},
			{Name: "sslkey", Secret: true, Doc: "Write-only key of sslcert: PEM text (stored encrypted, never shown) or a file under ROSETTA_KEYS_DIR."},
			{Name: "require_auth", Bound: true, Doc: "Authentication methods accepted from the server, e.g. scram-sha-256 (refuses a server asking for a cleartext or MD5 password)."},
			{Name: "channel_binding", OneOf: pglink.ChannelBindings, Bound: true, Doc: "require binds SCRAM to the TLS channel (needs TLS and scram-sha-256)."},
			desttype.DroppedColumns(d.DroppedColumns),
		},
		Open: Factory,
	}
}

// Config is a postgres destination's configuration, the JSON of
// configstore.Destination.ConfigWithSecrets.
type Config struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Database string `json:"database"`
	User     string `json:"user"`
	Password string `json:"password"`
	// Schema receives the destination tables ("public").
	Schema string `json:"schema"`
	// SSLMode is libpq's sslmode: disable, allow, prefer (default),
	// require, verify-ca or verify-full.
	SSLMode string `json:"sslmode"`
	// SSLRootCert, SSLCert and SSLKey (PEM text or paths the API confined
	// to ROSETTA_KEYS_DIR), RequireAuth and ChannelBinding: see
	// pglink.Security.
	SSLRootCert    string `json:"sslrootcert"`
	SSLCert        string `json:"sslcert"`
	SSLKey         string `json:"sslkey"`
	RequireAuth    string `json:"require_auth"`
	ChannelBinding string `json:"channel_binding"`
	// DroppedColumns is what happens to a destination column whose source
	// column was dropped: DroppedKeep (default) keeps it and writes NULL
	// to it in every row written from then on; DroppedDrop drops it.
	DroppedColumns string `json:"dropped_columns"`
	// ConnectTimeout bounds connecting (10s); not part of the JSON.
	ConnectTimeout time.Duration `json:"-"`
}

// The values of Config.DroppedColumns.
const (
	DroppedKeep = colmark.DroppedKeep
	DroppedDrop = colmark.DroppedDrop
)

// DefaultConfig holds the defaults applied to empty fields.
func DefaultConfig() Config {
	return Config{Port: 5432, Schema: "public", SSLMode: pglink.DefaultSSLMode, DroppedColumns: DroppedKeep, ConnectTimeout: 10 * time.Second}
}

// ParseConfig decodes a destination's JSON config over DefaultConfig and
// validates it. "port" may be a number or a numeric string. Unknown fields
// are ignored. Errors never contain the password.
func ParseConfig(raw json.RawMessage) (Config, error) {
	var wire struct {
		Host     string          `json:"host"`
		Port     json.RawMessage `json:"port"`
		Database string          `json:"database"`
		User     string          `json:"user"`
		Password string          `json:"password"`
		Schema   string          `json:"schema"`
		SSLMode  string          `json:"sslmode"`
		Dropped  string          `json:"dropped_columns"`
		RootCert string          `json:"sslrootcert"`
		Cert     string          `json:"sslcert"`
		Key      string          `json:"sslkey"`
		Auth     string          `json:"require_auth"`
		Binding  string          `json:"channel_binding"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		// json errors quote offsets and types, not values.
		return Config{}, fmt.Errorf("decode postgres destination config: %w", err)
	}
	c := DefaultConfig()
	c.Host, c.Database, c.User, c.Password = wire.Host, wire.Database, wire.User, wire.Password
	c.SSLRootCert, c.SSLCert, c.SSLKey, c.RequireAuth, c.ChannelBinding = wire.RootCert, wire.Cert, wire.Key, wire.Auth, wire.Binding
	if port := strings.Trim(string(wire.Port), `" `); port != "" && port != "null" {
		p, err := strconv.Atoi(port)
		if err != nil {
			return Config{}, fmt.Errorf("postgres destination config: port %.20q is not an integer", port)
		}
		c.Port = p
	}
	if wire.Schema != "" {
		c.Schema = wire.Schema
	}
	if wire.SSLMode != "" {
		c.SSLMode = wire.SSLMode
	}
	if wire.Dropped != "" {
		c.DroppedColumns = wire.Dropped
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate reports every missing or invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.Host == "" {
		errs = append(errs, errors.New("host is empty"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is out of range 1-65535", c.Port))
	}
	if c.Database == "" {
		errs = append(errs, errors.New("database is empty"))
	}
	if c.User == "" {
		errs = append(errs, errors.New("user is empty"))
	}
	if c.Schema == "" {
		errs = append(errs, errors.New("schema is empty"))
	} else if c.Schema == bookkeepingSchema {
		errs = append(errs, fmt.Errorf("schema %q is reserved for Rosetta's bookkeeping", c.Schema))
	}
	if c.SSLMode == "" {
		errs = append(errs, errors.New("sslmode is empty"))
	} else if err := c.Security().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := colmark.CheckDroppedPolicy(c.DroppedColumns); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("postgres destination config: %w", err)
	}
	return nil
}

// Security is what protects the destination's connections.
func (c Config) Security() pglink.Security {
	return pglink.Security{SSLMode: c.SSLMode, RootCert: c.SSLRootCert, ClientCert: c.SSLCert, ClientKey: c.SSLKey,
		RequireAuth: c.RequireAuth, ChannelBinding: c.ChannelBinding}
}

// LogValue keeps the password out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", c.Host), slog.Int("port", c.Port), slog.String("database", c.Database),
		slog.String("user", c.User), slog.String("schema", c.Schema), slog.String("sslmode", c.SSLMode),
		slog.Bool("client_cert", c.SSLCert != ""), slog.String("require_auth", c.RequireAuth),
		slog.String("dropped_columns", c.DroppedColumns),
	)
}

// connConfig builds the pgx connection config. The password is set on the
// parsed config, never put into a connection string, so that no parse or
// connect error can echo it.
func (c Config) connConfig() (*pgx.ConnConfig, error) {
	q := func(s string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
	}
	timeout := c.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConfig().ConnectTimeout
	}
	// TLS comes from c.Security(), applied below.
	dsn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=disable connect_timeout=%d application_name=rosetta-sink",
		q(c.Host), c.Port, q(c.Database), q(c.User), max(1, int(timeout.Seconds())))
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres destination %s:%d/%s: %w", c.Host, c.Port, c.Database, err)
	}
	cc.Password = c.Password
	if err := c.Security().Apply(&cc.Config); err != nil {
		return nil, fmt.Errorf("postgres destination %s:%d/%s: %w", c.Host, c.Port, c.Database, err)
	}
	// TCP keepalives find a destination that vanished without closing the
	// connection (a dead host, a dropped NAT entry) within about 30s of
	// silence, rather than the kernel's default two hours. A stalled
	// connection that still answers TCP (a stuck proxy) is caught by the
	// apply's deadline instead (ROSETTA_SINK_APPLY_TIMEOUT): pgx then
	// closes the connection, and the next attempt opens a new one.
	dialer := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3,
	}}
	cc.DialFunc = dialer.DialContext
	// Values arrive as the source's text output and are read by the
	// column types' input functions, so the settings those depend on are
	// pinned rather than taken from the destination's defaults: with
	// xmloption = document, xml content that is not one document (text,
	// several elements, '') fails to load; lc_monetary decides how money
	// text is read, and capture prints it under C.
	cc.RuntimeParams["xmloption"] = "content"
	cc.RuntimeParams["lc_monetary"] = "C"
	// Every statement is planned when it runs (unnamed statements), not
	// once per connection: the apply statements join the batch's staging
	// table to the destination table, and a plan cached while that table
	// was empty hashes the whole table on every later batch (measured:
	// 240 ms per 1000-row batch at 300k rows, growing with the table)
	// where a fresh plan probes the primary key. Planning costs well under
	// a millisecond per statement.
	cc.DefaultQueryExecMode = pgx.QueryExecModeExec
	return cc, nil
}

// connectError says where a connection failed and, when a TLS or
// authentication setting refused it, which setting decides.
func (c Config) connectError(err error) error {
	if hint := pglink.Hint(err); hint != "" {
		return fmt.Errorf("connect to postgres destination %s:%d/%s: %w (%s)", c.Host, c.Port, c.Database, err, hint)
	}
	return fmt.Errorf("connect to postgres destination %s:%d/%s: %w", c.Host, c.Port, c.Database, err)
}
