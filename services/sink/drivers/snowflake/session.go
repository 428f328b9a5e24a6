package snowflake

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"

	sf "github.com/snowflakedb/gosnowflake"
)

// connect returns the session, logging in if needed. A new session has no
// staging tables yet.
func (d *Driver) connect(ctx context.Context) (*sql.Conn, error) {
	if d.conn != nil {
		return d.conn, nil
	}
	key, err := d.cfg.privateKey()
	if err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("snowflake destination: %w", err)}
	}
	sfc, err := d.cfg.driverConfig(key)
	if err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("snowflake destination: %w", err)}
	}
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, *sfc))
	lctx := ctx
	if d.cfg.LoginTimeout > 0 {
		var cancel context.CancelFunc
		lctx, cancel = context.WithTimeout(ctx, d.cfg.LoginTimeout)
		defer cancel()
	}
	conn, err := db.Conn(lctx)
	if err != nil {
		_ = db.Close()
		return nil, loginError(d.cfg, err, key)
	}
	d.db, d.conn = db, conn
	d.stages = map[string]string{}
	d.log.Info("logged in to snowflake", "account", d.cfg.Account, "user", d.cfg.User)
	return conn, nil
}

// loginError explains a rejected key-pair login; other failures (network,
// timeouts) stay transient.
func loginError(cfg Config, err error, key *rsa.PrivateKey) error {
	if objectMissing(err) {
		return &ConfigError{Err: fmt.Errorf(
			"snowflake account %s accepted the login of user %s but refused its database, schema or warehouse: %w; "+
				"check that database %s, schema %s and the warehouse exist and that the role can use them",
			cfg.Account, cfg.User, err, ident(cfg.database), ident(cfg.schema))}
	}
	if loginRejected(err) {
		return &ConfigError{Err: fmt.Errorf(
			"snowflake rejected the key-pair login of user %s on account %s: %w; check account, user and role, and that the "+
				"public key of the configured private key (fingerprint %s) is registered on the user: "+
				"ALTER USER … SET RSA_PUBLIC_KEY = '…' (DESC USER shows RSA_PUBLIC_KEY_FP)",
			cfg.User, cfg.Account, err, keyFingerprint(key))}
	}
	return fmt.Errorf("log in to snowflake account %s as %s: %w", cfg.Account, cfg.User, err)
}

// loginRejected reports whether Snowflake answered a login with one of the
// codes that mean the account, user, role or key is wrong (as opposed to a
// network failure or timeout).
func loginRejected(err error) bool {
	var se *sf.SnowflakeError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Number {
	case 390100, 390101, 390144, 390189:
		return true
	}
	return false
}

// objectMissing reports whether a login failed with 390201: the database,
// schema or warehouse it names does not exist or the role may not use it
// (gosnowflake asks Snowflake to check them at login).
func objectMissing(err error) bool {
	var se *sf.SnowflakeError
	return errors.As(err, &se) && se.Number == 390201
}

// keyFingerprint is Snowflake's RSA_PUBLIC_KEY_FP of the key's public half.
func keyFingerprint(key *rsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "unknown"
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.StdEncoding.EncodeToString(sum[:])
}
