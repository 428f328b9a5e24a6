// Package snowflake is the sink driver that applies changes to a Snowflake
// destination through gosnowflake with key-pair (SNOWFLAKE_JWT)
// authentication: per fetched batch and table, the collapsed rows are
// written to a gzip-compressed CSV file, PUT to the table stage of a
// temporary staging table, COPY'd into it, and applied to the destination
// table with one version-guarded MERGE, all tables in one transaction.
//
// Destination layout, in the configured database and schema:
//   - each source table becomes a table named by destName, created on first
//     use with the source's key as (informational) primary key and the
//     version columns _ROSETTA_LSN and _ROSETTA_SEQ, plus _ROSETTA_DELETED
//     when soft_delete is on;
//   - _ROSETTA_TABLES holds the truncate watermark of each table;
//   - _ROSETTA_TOMB_<table> holds the key and version of hard-deleted rows
//     (not used with soft_delete, where the deleted row is the tombstone).
//
// docs/snowflake.md describes the statements, the type mapping and the
// naming rules.
package snowflake

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	sf "github.com/snowflakedb/gosnowflake"
	"github.com/youmark/pkcs8"

	"github.com/rosettacdc/rosetta/pkg/colmark"
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
)

// Type describes the snowflake destination type: the config fields the API
// accepts, with DefaultConfig's values as their defaults, the rules that
// span fields (a key or a key file; plain HTTP only when asked for by
// name), the login check, the live check and the driver's factory.
func Type() desttype.Type {
	d := DefaultConfig()
	return desttype.Type{
		Name: "snowflake",
		Fields: []desttype.Field{
			{Name: "account", Required: true, Bound: true},
			{Name: "user", Required: true, Bound: true},
			{Name: "database", Required: true},
			{Name: "schema", Required: true},
			{Name: "warehouse"},
			{Name: "role"},
			{Name: "private_key", Secret: true, Doc: "Write-only PEM text of the private key (key-pair authentication)."},
			{Name: "private_key_path", Doc: "Path of a PEM private key file on the sink's host, instead of private_key."},
			{Name: "private_key_passphrase", Secret: true, Doc: "Write-only passphrase of an encrypted key."},
			// host, port and protocol override the endpoint derived from
			// account (private link, or a test double).
			{Name: "host", Bound: true, Doc: "Overrides the host derived from account."},
			{Name: "port", Kind: desttype.Port, Bound: true},
			{Name: "protocol", OneOf: []string{"https", "http"}, Bound: true},
			// Plain HTTP sends the login token and the staged rows in clear.
			{Name: "insecure_http", Kind: desttype.Bool, Default: d.InsecureHTTP, Bound: true, Doc: "Allow protocol http (a test double only): tokens and rows cross the network unencrypted."},
			{Name: "tls_ca_file", Bound: true, Doc: "PEM file of CA certificates on the sink's host (inside ROSETTA_KEYS_DIR) that the endpoint's certificate must chain to, instead of the system's."},
			// Keep deleted rows with _ROSETTA_DELETED = true (docs/snowflake.md).
			{Name: "soft_delete", Kind: desttype.Bool, Default: d.SoftDelete, Doc: "Keep deleted rows with _ROSETTA_DELETED = true instead of deleting them."},
			desttype.DroppedColumns(d.DroppedColumns),
			// Warehouse credits follow the number of batches (docs/snowflake.md).
			{Name: "flush_interval", Kind: desttype.Duration, Doc: "Longest a change waits before its batch is applied (default " + desttype.Seconds(d.FlushInterval) + "): " +
				"each batch resumes the warehouse, so a longer interval costs latency and saves credits."},
			{Name: "batch_size", Kind: desttype.BatchSize, Doc: fmt.Sprintf("Most changes applied in one batch, 1-%d (default %d); a full batch is applied at once.", desttype.MaxBatchSize, d.BatchSize)},
		},
		Validate:  validateFields,
		Check:     Check,
		LiveCheck: LiveCheck,
		Open:      Factory,
	}
}

// validateFields is what the API checks across a request's fields, before
// any key is read.
func validateFields(config map[string]any, storedSecret func(name string) bool) error {
	key, _ := config["private_key"].(string)
	path, _ := config["private_key_path"].(string)
	_, keySent := config["private_key"]
	hasKey := key != "" || (!keySent && storedSecret("private_key"))
	if !hasKey && path == "" {
		return &desttype.ConfigError{Field: "private_key", Msg: "a snowflake destination needs config.private_key (the PEM text) or config.private_key_path (a file on the sink's host)"}
	}
	// Plain HTTP only when asked for by name: it sends the login token
	// and every staged row unencrypted.
	if config["protocol"] == "http" && config["insecure_http"] != true {
		return &desttype.ConfigError{Field: "insecure_http", Msg: "config.protocol http sends the login token and every staged row unencrypted: " +
			"set config.insecure_http to true to allow it (a test double only), or use https (with config.tls_ca_file for a private CA)"}
	}
	return nil
}

// Config is a snowflake destination's configuration, the JSON of
// configstore.Destination.ConfigWithSecrets. The field names are those the
// API accepts (Type).
type Config struct {
	// Account is the account identifier ("myorg-myaccount", or a legacy
	// locator such as "xy12345.eu-west-1").
	Account string `json:"account"`
	User    string `json:"user"`
	// Role and Warehouse are optional: empty uses the user's defaults.
	Role      string `json:"role"`
	Warehouse string `json:"warehouse"`
	// Database and Schema receive the destination tables. Both must exist.
	// A plain identifier is case-insensitive (stored upper-cased); a name in
	// double quotes is taken exactly (see configName).
	Database string `json:"database"`
	Schema   string `json:"schema"`
	// PrivateKey is the PEM text of the user's RSA private key (PKCS#8,
	// encrypted or not, or PKCS#1); PrivateKeyPath names a PEM file on the
	// sink's host instead, read at every login so a rotated file is picked
	// up. Exactly one is set. PrivateKeyPassphrase decrypts an ENCRYPTED
	// PRIVATE KEY.
	PrivateKey           string `json:"private_key"`
	PrivateKeyPath       string `json:"private_key_path"`
	PrivateKeyPassphrase string `json:"private_key_passphrase"`
	// Host, Port and Protocol override the endpoint gosnowflake derives from
	// Account (private link, or a test double). Protocol is https (default)
	// or http; http needs InsecureHTTP, so that a plain-text endpoint is
	// never used by mistake.
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
	// InsecureHTTP allows Protocol http: the key-pair JWT, the session
	// token and every staged file then cross the network unencrypted.
	InsecureHTTP bool `json:"insecure_http"`
	// TLSCAFile is a PEM file of CA certificates on the sink's host that
	// the endpoint's certificate must chain to, instead of the system's
	// roots (a private-link proxy, a test double); read at every login.
	TLSCAFile string `json:"tls_ca_file"`
	// SoftDelete keeps deleted rows, flagged _ROSETTA_DELETED = TRUE, instead
	// of deleting them.
	SoftDelete bool `json:"soft_delete"`
	// DroppedColumns is what happens to a destination column whose source
	// column was dropped: DroppedKeep (default) keeps it and writes NULL to
	// it in every row written from then on; DroppedDrop drops it.
	DroppedColumns string `json:"dropped_columns"`
	// FlushInterval is the longest a change waits before its batch is
	// applied, BatchSize the most changes in one batch: the sink's batch
	// policy for this destination (BatchPolicy). Every batch resumes the
	// warehouse, so the default trades up to a minute of latency for far
	// fewer warehouse wake-ups than the sink's 20 ms.
	FlushInterval time.Duration `json:"-"`
	BatchSize     int           `json:"batch_size"`

	// LoginTimeout bounds a login, retries included (60s), as a deadline on
	// its context (gosnowflake's own LoginTimeout is deprecated); not in
	// the JSON.
	LoginTimeout time.Duration `json:"-"`
	// MaxRetryCount is gosnowflake's HTTP retry count (0: its default, 7);
	// not in the JSON.
	MaxRetryCount int `json:"-"`

	// database and schema are Database and Schema resolved by configName.
	database, schema string
}

// The values of Config.DroppedColumns.
const (
	DroppedKeep = colmark.DroppedKeep
	DroppedDrop = colmark.DroppedDrop
)

// The batch policy of a snowflake destination without flush_interval or
// batch_size (docs/snowflake.md, Latency and warehouse credits).
const (
	DefaultFlushInterval = 60 * time.Second
	DefaultBatchSize     = 20000
)

// DefaultConfig holds the defaults applied to empty fields.
func DefaultConfig() Config {
	// Losing a column's history surprises warehouse users more than a
	// column of NULLs: dropped columns are kept by default.
	return Config{Protocol: "https", LoginTimeout: 60 * time.Second, DroppedColumns: DroppedKeep,
		FlushInterval: DefaultFlushInterval, BatchSize: DefaultBatchSize}
}

// ParseConfig decodes a destination's JSON config over DefaultConfig and
// validates it. "port" may be a number or a numeric string and
// "soft_delete" a boolean or "true"/"false". Unknown fields are ignored. It
// checks that the private key can be read and decrypted, so that a wrong
// passphrase is reported when the destination is configured rather than at
// the first batch. Errors never contain the key or the passphrase.
func ParseConfig(raw json.RawMessage) (Config, error) {
	c, err := decodeConfig(raw)
	if err != nil {
		return Config{}, err
	}
	if _, err := c.privateKey(); err != nil {
		return Config{}, fmt.Errorf("snowflake destination config: %w", err)
	}
	return c, nil
}

// decodeConfig is ParseConfig without reading the key.
func decodeConfig(raw json.RawMessage) (Config, error) {
	// The fields Config spells as the JSON does come through it; these
	// take more than one spelling, or a text form, and are checked below.
	var wire struct {
		Config
		Port          json.RawMessage `json:"port"`
		InsecureHTTP  json.RawMessage `json:"insecure_http"`
		SoftDelete    json.RawMessage `json:"soft_delete"`
		FlushInterval string          `json:"flush_interval"`
		BatchSize     json.RawMessage `json:"batch_size"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		// json errors quote offsets and types, not values.
		return Config{}, fmt.Errorf("decode snowflake destination config: %w", err)
	}
	c := DefaultConfig()
	c.Account, c.User, c.Role, c.Warehouse = wire.Account, wire.User, wire.Role, wire.Warehouse
	c.Database, c.Schema, c.Host, c.TLSCAFile = wire.Database, wire.Schema, wire.Host, wire.TLSCAFile
	c.PrivateKey, c.PrivateKeyPath, c.PrivateKeyPassphrase = wire.PrivateKey, wire.PrivateKeyPath, wire.PrivateKeyPassphrase
	if wire.Protocol != "" {
		c.Protocol = wire.Protocol
	}
	if wire.DroppedColumns != "" {
		c.DroppedColumns = wire.DroppedColumns
	}
	if wire.FlushInterval != "" {
		d, err := time.ParseDuration(wire.FlushInterval)
		if err != nil || d <= 0 || d > time.Hour {
			return Config{}, fmt.Errorf("snowflake destination config: flush_interval %.20q is not a duration from 1ms to 1h, such as \"60s\"", wire.FlushInterval)
		}
		c.FlushInterval = d
	}
	if n := strings.Trim(string(wire.BatchSize), `" `); n != "" && n != "null" {
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 || v > desttype.MaxBatchSize {
			return Config{}, fmt.Errorf("snowflake destination config: batch_size %.20q is not an integer from 1 to %d", n, desttype.MaxBatchSize)
		}
		c.BatchSize = v
	}
	if port := strings.Trim(string(wire.Port), `" `); port != "" && port != "null" {
		p, err := strconv.Atoi(port)
		if err != nil {
			return Config{}, fmt.Errorf("snowflake destination config: port %.20q is not an integer", port)
		}
		c.Port = p
	}
	for _, b := range []struct {
		name string
		raw  json.RawMessage
		to   *bool
	}{{"soft_delete", wire.SoftDelete, &c.SoftDelete}, {"insecure_http", wire.InsecureHTTP, &c.InsecureHTTP}} {
		switch v := strings.Trim(string(b.raw), `" `); v {
		case "", "null", "false":
		case "true":
			*b.to = true
		default:
			return Config{}, fmt.Errorf("snowflake destination config: %s %.20q is not true or false", b.name, v)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate reports every missing or invalid field (without reading the
// key) and resolves the database and schema names.
func (c *Config) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"account", c.Account}, {"user", c.User}} {
		if strings.TrimSpace(f.v) == "" {
			errs = append(errs, fmt.Errorf("%s is empty", f.name))
		}
	}
	var err error
	if strings.TrimSpace(c.Account) != "" {
		if c.Account, err = normalizeAccount(c.Account); err != nil {
			errs = append(errs, err)
		}
	}
	if c.database, err = configName("database", c.Database); err != nil {
		errs = append(errs, err)
	}
	if c.schema, err = configName("schema", c.Schema); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.PrivateKey == "" && c.PrivateKeyPath == "":
		errs = append(errs, errors.New("private_key (the PEM text) or private_key_path (a PEM file on the sink's host) is required for key-pair authentication"))
	case c.PrivateKey != "" && c.PrivateKeyPath != "":
		errs = append(errs, errors.New("set private_key or private_key_path, not both"))
	}
	if c.Port != 0 && (c.Port < 1 || c.Port > 65535) {
		errs = append(errs, fmt.Errorf("port %d is out of range 1-65535", c.Port))
	}
	switch {
	case c.Protocol != "https" && c.Protocol != "http":
		errs = append(errs, fmt.Errorf("protocol %q is not https or http", c.Protocol))
	case c.Protocol == "http" && !c.InsecureHTTP:
		// A CheckError, so that the API's 422 names the field to set.
		errs = append(errs, &CheckError{Field: "insecure_http", Err: errors.New("protocol http sends the key-pair token, " +
			"the session token and every staged row unencrypted: set insecure_http to true to allow it (a test double only), or use https")})
	case c.Protocol == "http" && c.TLSCAFile != "":
		errs = append(errs, &CheckError{Field: "tls_ca_file", Err: errors.New("tls_ca_file needs protocol https")})
	}
	if err := colmark.CheckDroppedPolicy(c.DroppedColumns); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("snowflake destination config: %w", err)
	}
	return nil
}

// LogValue keeps the key and passphrase out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("account", c.Account), slog.String("user", c.User), slog.String("role", c.Role),
		slog.String("warehouse", c.Warehouse), slog.String("database", c.Database), slog.String("schema", c.Schema),
		slog.Bool("private_key_set", c.PrivateKey != ""), slog.String("private_key_path", c.PrivateKeyPath),
		slog.Bool("private_key_passphrase_set", c.PrivateKeyPassphrase != ""),
		slog.String("host", c.Host), slog.Int("port", c.Port), slog.String("protocol", c.Protocol),
		slog.Bool("insecure_http", c.InsecureHTTP), slog.String("tls_ca_file", c.TLSCAFile),
		slog.Bool("soft_delete", c.SoftDelete), slog.String("dropped_columns", c.DroppedColumns),
	)
}

// privateKey reads and decodes the configured key. Its errors say which
// field to fix and never contain key material.
func (c Config) privateKey() (*rsa.PrivateKey, error) {
	text, field := []byte(c.PrivateKey), "private_key"
	if c.PrivateKeyPath != "" {
		b, err := os.ReadFile(c.PrivateKeyPath)
		if err != nil {
			return nil, &KeyError{Field: "private_key_path", Err: fmt.Errorf("read private_key_path: %w", err)}
		}
		text, field = b, "private_key_path "+c.PrivateKeyPath
	}
	return parsePrivateKey(text, []byte(c.PrivateKeyPassphrase), field)
}

// minKeyBits is the smallest RSA key Snowflake accepts for key-pair auth.
const minKeyBits = 2048

// parsePrivateKey decodes a PEM RSA private key: PKCS#8 ("PRIVATE KEY"),
// encrypted PKCS#8 ("ENCRYPTED PRIVATE KEY", what Snowflake's guide
// generates with openssl pkcs8 -topk8 -v2) or PKCS#1 ("RSA PRIVATE KEY").
// field names the config field in messages.
//
// Errors are a *KeyError naming the config field to fix.
func parsePrivateKey(text, passphrase []byte, field string) (*rsa.PrivateKey, error) {
	keyField := "private_key"
	if strings.HasPrefix(field, "private_key_path") {
		keyField = "private_key_path"
	}
	k, err := decodePrivateKey(text, passphrase, field)
	if err != nil {
		var ke *KeyError
		if errors.As(err, &ke) {
			return nil, err
		}
		return nil, &KeyError{Field: keyField, Err: err}
	}
	return k, nil
}

// KeyError is a private key that cannot be used; Field is the config field
// to fix: private_key, private_key_path or private_key_passphrase. Its
// message never contains key material.
type KeyError struct {
	Field string
	Err   error
}

func (e *KeyError) Error() string { return e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

func decodePrivateKey(text, passphrase []byte, field string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(text)
	if block == nil {
		return nil, fmt.Errorf("%s is not a PEM private key: expected a -----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY----- block", field)
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "ENCRYPTED PRIVATE KEY":
		if len(passphrase) == 0 {
			return nil, &KeyError{Field: "private_key_passphrase", Err: fmt.Errorf("%s is encrypted: set private_key_passphrase", field)}
		}
		rsaKey, perr := pkcs8.ParsePKCS8PrivateKeyRSA(block.Bytes, passphrase)
		if perr != nil {
			return nil, &KeyError{Field: "private_key_passphrase", Err: fmt.Errorf("private_key_passphrase does not decrypt %s, or it is not an RSA key: %w", field, perr)}
		}
		key = rsaKey
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		if _, ok := block.Headers["DEK-Info"]; ok {
			return nil, fmt.Errorf("%s uses legacy OpenSSL PEM encryption, which is not supported: convert it to encrypted PKCS#8 "+
				"(openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.pem -out rsa_key.p8)", field)
		}
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%s holds a PEM %q block; expected PRIVATE KEY, ENCRYPTED PRIVATE KEY or RSA PRIVATE KEY", field, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: parse private key: %w", field, err)
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s is a %T; Snowflake key-pair authentication needs an RSA key", field, key)
	}
	if bits := rsaKey.N.BitLen(); bits < minKeyBits {
		return nil, fmt.Errorf("%s is a %d-bit RSA key; Snowflake needs at least %d bits", field, bits, minKeyBits)
	}
	return rsaKey, nil
}

// driverConfig is the gosnowflake configuration for one login with key.
// It fails only when TLSCAFile cannot be used.
func (c Config) driverConfig(key *rsa.PrivateKey) (*sf.Config, error) {
	transport, err := c.transport()
	if err != nil {
		return nil, err
	}
	return &sf.Config{
		Transporter:   transport,
		Account:       c.Account,
		User:          c.User,
		Role:          c.Role,
		Warehouse:     c.Warehouse,
		Database:      c.Database,
		Schema:        c.Schema,
		Authenticator: sf.AuthTypeJwt,
		PrivateKey:    key,
		Host:          c.Host,
		Port:          c.Port,
		Protocol:      c.Protocol,
		Application:   "Rosetta",
		// Client telemetry is not needed and is one less outbound call.
		//lint:ignore SA1019 gosnowflake 1.19 has no other switch for client telemetry; Rosetta sends none
		DisableTelemetry: true,
		MaxRetryCount:    c.MaxRetryCount,
		Params:           sessionParamMap(),
	}, nil
}
