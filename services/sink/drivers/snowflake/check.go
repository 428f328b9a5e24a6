package snowflake

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
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
// the private key, then logs in and runs SELECT 1, within ctx and at most
// CheckTimeout. Every failure is a *CheckError.
//
// A key given by private_key_path is not checked: the file is on the
// sink's host, which need not be the caller's; the sink reports a bad file
// through the destination's health.
func Check(ctx context.Context, raw json.RawMessage) error {
	cfg, err := decodeConfig(raw)
	if err != nil {
		return &CheckError{Err: err}
	}
	if cfg.PrivateKeyPath != "" {
		return nil
	}
	key, err := cfg.privateKey()
	if err != nil {
		field := "private_key"
		var ke *KeyError
		if errors.As(err, &ke) {
			field = ke.Field
		}
		return &CheckError{Field: field, Err: fmt.Errorf("snowflake destination config: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	cfg.LoginTimeout = CheckTimeout
	if dl, ok := ctx.Deadline(); ok {
		cfg.LoginTimeout = time.Until(dl)
	}
	cfg.MaxRetryCount = 1
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, *cfg.driverConfig(key)))
	defer db.Close()
	var one int
	err = db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	if err == nil {
		return nil
	}
	if loginRejected(err) {
		return &CheckError{Field: rejectedField(err), Err: loginError(cfg, err, key)}
	}
	var se *sf.SnowflakeError
	if errors.As(err, &se) {
		// Logged in, but the session cannot run a query: typically no
		// usable warehouse, database or schema for the role.
		return &CheckError{Err: fmt.Errorf("logged in to snowflake account %s as %s, but SELECT 1 failed: %w; "+
			"check that the role can use the warehouse, database and schema", cfg.Account, cfg.User, err)}
	}
	field, where := "account", "account "+cfg.Account
	if cfg.Host != "" {
		field, where = "host", fmt.Sprintf("%s://%s", cfg.Protocol, cfg.Host)
		if cfg.Port != 0 {
			where += fmt.Sprintf(":%d", cfg.Port)
		}
	}
	return &CheckError{Field: field, Err: fmt.Errorf("could not reach snowflake (%s): %w; "+
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
		case 390201:
			return "account"
		}
	}
	return "private_key"
}
