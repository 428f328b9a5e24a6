package settings

import (
	"errors"
	"fmt"
	"net/url"
)

// Environment variables of how the services authenticate to Redis
// (ROSETTA_REDIS_URL) and check its certificate. The password can be
// given as ROSETTA_REDIS_PASSWORD_FILE.
const (
	EnvRedisUser     = "ROSETTA_REDIS_USER"
	EnvRedisPassword = "ROSETTA_REDIS_PASSWORD"
	EnvRedisTLSCA    = "ROSETTA_REDIS_TLS_CA"
	EnvRedisTLSCert  = "ROSETTA_REDIS_TLS_CERT"
	EnvRedisTLSKey   = "ROSETTA_REDIS_TLS_KEY"
)

// RedisAuth is who the services are to Redis and how they check it: an
// ACL user and password (kept out of the URL, so the URL is no secret) and
// TLS for rediss:// URLs.
type RedisAuth struct {
	// User is an ACL user; empty with a password is Redis's "default".
	User, Password string
	// TLSCA is a PEM file of the CAs that sign the server's certificate;
	// empty trusts the system's CAs.
	TLSCA string
	// TLSCert and TLSKey are the client's certificate and key (PEM), for
	// a server with tls-auth-clients.
	TLSCert, TLSKey string
}

// IsZero reports whether nothing is set.
func (a RedisAuth) IsZero() bool { return a == RedisAuth{} }

func loadRedisAuth() (RedisAuth, error) {
	var a RedisAuth
	var errs []error
	for _, f := range []struct {
		env string
		dst *string
	}{
		{EnvRedisUser, &a.User}, {EnvRedisPassword, &a.Password}, {EnvRedisTLSCA, &a.TLSCA},
		{EnvRedisTLSCert, &a.TLSCert}, {EnvRedisTLSKey, &a.TLSKey},
	} {
		v, _, err := lookupEnv(f.env)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*f.dst = v
	}
	return a, errors.Join(errs...)
}

// ValidateRedis checks the Redis settings against the URL they go with.
func ValidateRedis(rawURL string, a RedisAuth) error {
	if rawURL == "" {
		if !a.IsZero() {
			return fmt.Errorf("the ROSETTA_REDIS_* credentials and TLS settings are set but %s is empty: set it (redis:// or rediss://), or unset them", EnvRedisURL)
		}
		return nil
	}
	var errs []error
	u, err := url.Parse(rawURL)
	switch {
	case err != nil:
		// url's message quotes the URL, password included.
		errs = append(errs, fmt.Errorf("%s is not a URL: want redis://host:6379/0 or rediss://host:6380/0", EnvRedisURL))
	case u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix":
		errs = append(errs, fmt.Errorf("%s has scheme %q: want redis://, rediss:// (TLS) or unix://", EnvRedisURL, u.Scheme))
	default:
		if u.Scheme != "rediss" && (a.TLSCA != "" || a.TLSCert != "") {
			errs = append(errs, fmt.Errorf("%s or %s is set but %s is not a rediss:// URL: use rediss:// to connect with TLS, or unset them",
				EnvRedisTLSCA, EnvRedisTLSCert, EnvRedisURL))
		}
		if _, has := u.User.Password(); has && (a.User != "" || a.Password != "") {
			errs = append(errs, fmt.Errorf("%s holds a password and %s/%s are set too: set the credentials in one place (preferably the variables)",
				EnvRedisURL, EnvRedisUser, EnvRedisPassword))
		}
	}
	if a.User != "" && a.Password == "" {
		errs = append(errs, fmt.Errorf("%s is set without %s (or %s_FILE): an ACL user needs its password", EnvRedisUser, EnvRedisPassword, EnvRedisPassword))
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		errs = append(errs, fmt.Errorf("%s and %s go together: set both or neither", EnvRedisTLSCert, EnvRedisTLSKey))
	}
	return errors.Join(errs...)
}
