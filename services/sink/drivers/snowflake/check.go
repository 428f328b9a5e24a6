package snowflake

import (
	"context"
	"crypto/rsa"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	sf "github.com/snowflakedb/gosnowflake"
)

// CheckTimeout bounds Check's login when its context has no earlier
// deadline.
const CheckTimeout = 15 * time.Second

// CheckError is a destination config Check found unusable. Field is the
// config field to fix ("private_key", "private_key_passphrase", "account",
// "role", "host"…), or "" when no single field is at fault. The message
// says what to change and never contains the key or the passphrase.
type CheckError struct {
	Field string
	Err   error
}

func (e *CheckError) Error() string { return e.Err.Error() }
func (e *CheckError) Unwrap() error { return e.Err }

// ConfigField is Field, for callers that classify errors by a small
// interface rather than by importing this package (services/api).
func (e *CheckError) ConfigField() string { return e.Field }

// Check tells whether a snowflake destination config (the JSON the API
// stores, secrets included) can be used: it decodes it, reads and decrypts
// the private key, logs in, then does in small what every batch does
// (checkSession): a temporary table in the configured schema, a PUT of a
// tiny file to its stage and a REMOVE, an INSERT and a SELECT on the
// warehouse. All within ctx and at most CheckTimeout. Every failure is a
// *CheckError naming the field or grant to fix.
//
// A key given by private_key_path is not checked: the file is on the
// sink's host, which need not be the caller's; the sink reports a bad file
// through the destination's health.
func Check(ctx context.Context, raw json.RawMessage) error {
	cfg, err := decodeConfig(raw)
	if err != nil {
		return configCheckError(err)
	}
	if cfg.PrivateKeyPath != "" {
		return nil
	}
	key, err := checkKey(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	db, conn, err := checkLogin(ctx, cfg, key)
	if err != nil {
		return err
	}
	defer db.Close()
	defer conn.Close()
	return checkSession(ctx, conn, cfg)
}

// configCheckError is a config that does not decode or validate, naming
// the field when one is at fault.
func configCheckError(err error) *CheckError {
	var ce *CheckError
	if errors.As(err, &ce) {
		return &CheckError{Field: ce.Field, Err: err}
	}
	return &CheckError{Err: err}
}

// checkKey reads and decrypts the configured key; a failure is a
// *CheckError naming the field.
func checkKey(cfg Config) (*rsa.PrivateKey, error) {
	key, err := cfg.privateKey()
	if err != nil {
		field := "private_key"
		var ke *KeyError
		if errors.As(err, &ke) {
			field = ke.Field
		}
		return nil, &CheckError{Field: field, Err: fmt.Errorf("snowflake destination config: %w", err)}
	}
	return key, nil
}

// checkLogin logs in once (one HTTP retry) and returns the session; a
// failure is a *CheckError naming the field most likely at fault.
func checkLogin(ctx context.Context, cfg Config, key *rsa.PrivateKey) (*sql.DB, *sql.Conn, error) {
	cfg.MaxRetryCount = 1
	sfc, err := cfg.driverConfig(key)
	if err != nil {
		return nil, nil, &CheckError{Field: "tls_ca_file", Err: err}
	}
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, *sfc))
	conn, err := db.Conn(ctx)
	if err == nil {
		return db, conn, nil
	}
	_ = db.Close()
	if loginRejected(err) {
		return nil, nil, &CheckError{Field: rejectedField(err), Err: loginError(cfg, err, key)}
	}
	if objectMissing(err) {
		return nil, nil, &CheckError{Field: "database", Err: loginError(cfg, err, key)}
	}
	var se *sf.SnowflakeError
	if errors.As(err, &se) {
		return nil, nil, &CheckError{Err: fmt.Errorf("log in to snowflake account %s as %s: %w", cfg.Account, cfg.User, err)}
	}
	field, where := "account", "account "+cfg.Account
	if cfg.Host != "" {
		field, where = "host", fmt.Sprintf("%s://%s", cfg.Protocol, cfg.Host)
		if cfg.Port != 0 {
			where += fmt.Sprintf(":%d", cfg.Port)
		}
	}
	if certRefused(err) {
		field = "tls_ca_file"
		return nil, nil, &CheckError{Field: field, Err: fmt.Errorf("snowflake (%s) presented a certificate this host does not trust: %w; "+
			"set tls_ca_file to the CA that signed it, or fix host", where, err)}
	}
	return nil, nil, &CheckError{Field: field, Err: fmt.Errorf("could not reach snowflake (%s): %w; "+
		"check account (and host, port, protocol if set) and that this host can reach it", where, err)}
}

// rejectedField is the config field a rejected login most likely blames.
func rejectedField(err error) string {
	var se *sf.SnowflakeError
	if errors.As(err, &se) {
		switch se.Number {
		case 390100: // incorrect username
			return "user"
		case 390189:
			return "role"
		}
	}
	return "private_key"
}

// checkSession runs, on a logged-in session, what every batch needs: a
// temporary table in the configured schema (CREATE TABLE on the schema),
// a file PUT to its table stage and removed (the stage's cloud storage is
// reachable from here), an INSERT and a SELECT (a warehouse the role can
// use and resume). The table goes with the session.
func checkSession(ctx context.Context, conn *sql.Conn, cfg Config) error {
	steps, cleanup, err := sessionSteps(cfg)
	if err != nil {
		return err
	}
	defer cleanup()
	for _, st := range steps {
		if err := st.run(ctx, conn, cfg); err != nil {
			return err
		}
	}
	return nil
}

// sessionStep is one statement of the session check: what it shows
// (name), the config field to blame and the fix to suggest.
type sessionStep struct {
	name, q, field, fix string
}

// run executes the step; a failure is a *CheckError.
func (st sessionStep) run(ctx context.Context, conn *sql.Conn, cfg Config) error {
	rows, err := conn.QueryContext(ctx, st.q)
	if err == nil {
		for rows.Next() {
		}
		err = errors.Join(rows.Err(), rows.Close())
	}
	if err != nil {
		return &CheckError{Field: st.field, Err: fmt.Errorf("logged in to snowflake account %s as %s, but %s failed: %w; %s",
			cfg.Account, cfg.User, strings.SplitN(st.q, " ", 2)[0], err, st.fix)}
	}
	return nil
}

// sessionSteps are checkSession's statements, in order; cleanup removes
// the local file the PUT uploads.
func sessionSteps(cfg Config) ([]sessionStep, func(), error) {
	name := "_ROSETTA_CHECK_" + strings.ToUpper(randomHex(6))
	table := qualified(cfg.database, cfg.schema, name)
	stage := "@" + ident(cfg.database) + "." + ident(cfg.schema) + ".%" + ident(name)
	f, err := os.CreateTemp("", "rosetta-check-*.csv")
	if err != nil {
		return nil, nil, &CheckError{Err: fmt.Errorf("create the check's local file: %w", err)}
	}
	cleanup := func() { _ = os.Remove(f.Name()) }
	_, werr := f.WriteString("1\n")
	if err := errors.Join(werr, f.Close()); err != nil {
		cleanup()
		return nil, nil, &CheckError{Err: fmt.Errorf("write the check's local file: %w", err)}
	}
	return []sessionStep{
		{"temporary table", "CREATE TEMPORARY TABLE " + table + " (" + ident("X") + " NUMBER(1,0))", "schema",
			"the database and schema must exist and the role needs USAGE on both and CREATE TABLE on the schema"},
		{"stage PUT", "PUT " + stringLiteral("file://"+f.Name()) + " " + stage + "/check AUTO_COMPRESS = TRUE OVERWRITE = TRUE", "",
			"uploading to a table stage failed: check the network policy and that this host can reach the account's stage storage"},
		{"stage REMOVE", "REMOVE " + stage + "/check", "", "removing a staged file failed"},
		{"warehouse DML", "INSERT INTO " + table + " (" + ident("X") + ") VALUES (1)", "warehouse",
			"the role needs USAGE (and OPERATE, to resume it) on the warehouse, set as warehouse or as the user's default"},
		{"warehouse query", "SELECT " + ident("X") + " FROM " + table, "warehouse", "a query on the warehouse failed"},
	}, cleanup, nil
}
