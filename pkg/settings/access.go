package settings

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/rosettacdc/rosetta/pkg/apitoken"
)

// Environment variables of API access control (docs/security.md).
const (
	EnvAPIToken       = "ROSETTA_API_TOKEN"
	EnvAPITokenFile   = "ROSETTA_API_TOKEN_FILE"
	EnvAllowedOrigins = "ROSETTA_ALLOWED_ORIGINS"
	EnvHTTPTLSCert    = "ROSETTA_HTTP_TLS_CERT"
	EnvHTTPTLSKey     = "ROSETTA_HTTP_TLS_KEY"
	EnvDuckDBRoots    = "ROSETTA_DUCKDB_ROOTS"
	EnvKeysDir        = "ROSETTA_KEYS_DIR"
)

// DevTokenFile is where, under the data directory, `rosetta dev` keeps the
// admin token it generates when ROSETTA_API_TOKEN is empty; local tools
// (bin/duckquery) read it from there.
const DevTokenFile = "api-token"

// Access configures who may use the API. It is loaded apart from Settings
// (LoadAccess) because only the API uses it.
type Access struct {
	// APIToken is the bootstrap admin token (ROSETTA_API_TOKEN, or the
	// content of ROSETTA_API_TOKEN_FILE). The API stores its hash under the
	// name "bootstrap" when it starts; empty stores none (tokens made with
	// `rosetta token create` still work). `rosetta dev` generates one when
	// it is empty.
	APIToken string
	// AllowedOrigins are web origins allowed to call the API from a
	// browser (ROSETTA_ALLOWED_ORIGINS, comma-separated, like
	// https://console.example.com); requests from other origins are
	// refused and CORS is off when it is empty.
	AllowedOrigins []string
	// TLSCertFile and TLSKeyFile (ROSETTA_HTTP_TLS_CERT, ROSETTA_HTTP_TLS_KEY:
	// PEM files, the certificate file may hold the chain) make the API
	// serve HTTPS only. Both or neither. The files are read again when they
	// change, so a renewed certificate needs no restart.
	TLSCertFile, TLSKeyFile string
	// DuckDBRoots (ROSETTA_DUCKDB_ROOTS, comma-separated absolute
	// directories) are where DuckDB destination files may be; empty means
	// the data dir.
	DuckDBRoots []string
	// KeysDir (ROSETTA_KEYS_DIR, an absolute directory) is where Snowflake
	// private_key_path and tls_ca_file files may be; empty refuses both
	// (send the PEM text as private_key instead, trust the system's CAs).
	KeysDir string
}

// LoadAccess reads the environment and validates it.
func LoadAccess() (Access, error) {
	var a Access
	tok, tokSet := os.LookupEnv(EnvAPIToken)
	file := os.Getenv(EnvAPITokenFile)
	switch {
	case tokSet && tok != "" && file != "":
		return a, fmt.Errorf("both %s and %s are set: set one", EnvAPIToken, EnvAPITokenFile)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return a, fmt.Errorf("%s: %w", EnvAPITokenFile, err)
		}
		a.APIToken = strings.TrimSpace(string(b))
		if a.APIToken == "" {
			return a, fmt.Errorf("%s=%s: the file is empty", EnvAPITokenFile, file)
		}
	default:
		a.APIToken = tok
	}
	var errs []error
	a.TLSCertFile, a.TLSKeyFile = os.Getenv(EnvHTTPTLSCert), os.Getenv(EnvHTTPTLSKey)
	if (a.TLSCertFile == "") != (a.TLSKeyFile == "") {
		errs = append(errs, fmt.Errorf("set both %s and %s to serve HTTPS, or neither", EnvHTTPTLSCert, EnvHTTPTLSKey))
	}
	for _, d := range strings.Split(os.Getenv(EnvDuckDBRoots), ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		if !filepath.IsAbs(d) {
			errs = append(errs, fmt.Errorf("%s: %q is not an absolute directory", EnvDuckDBRoots, d))
			continue
		}
		a.DuckDBRoots = append(a.DuckDBRoots, filepath.Clean(d))
	}
	if a.KeysDir = os.Getenv(EnvKeysDir); a.KeysDir != "" && !filepath.IsAbs(a.KeysDir) {
		errs = append(errs, fmt.Errorf("%s: %q is not an absolute directory", EnvKeysDir, a.KeysDir))
	}
	for _, o := range strings.Split(os.Getenv(EnvAllowedOrigins), ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Errorf("%s: %q is not an origin like https://console.example.com", EnvAllowedOrigins, o))
			continue
		}
		a.AllowedOrigins = append(a.AllowedOrigins, u.Scheme+"://"+u.Host)
	}
	if a.APIToken != "" {
		if err := apitoken.CheckBootstrap(a.APIToken); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvAPIToken, err))
		}
	}
	return a, errors.Join(errs...)
}
