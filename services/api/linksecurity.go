package api

import (
	"errors"
	"path/filepath"
	"sort"
	"unicode"

	"github.com/rosettacdc/rosetta/pkg/pglink"
)

// maxPEMLen bounds a certificate chain or key sent as PEM text.
const maxPEMLen = 64 << 10

// checkLinkSecurity validates the TLS and authentication settings of a
// source or a destination (prefix "" or "config.") and confines the ones
// that name files to ROSETTA_KEYS_DIR, as Snowflake's private_key_path:
// an admin of the API must not make a service read any file it can read
// and present it to a server. It returns sec with the paths resolved
// (absolute, symbolic links followed), which is what is stored.
func (s *Server) checkLinkSecurity(prefix string, sec pglink.Security) (pglink.Security, error) {
	for _, f := range []struct {
		name string
		v    string
	}{{"sslrootcert", sec.RootCert}, {"sslcert", sec.ClientCert}, {"sslkey", sec.ClientKey}, {"require_auth", sec.RequireAuth}} {
		if len(f.v) > maxPEMLen {
			return sec, invalid(prefix+f.name, "%s%s is too long: at most %d bytes", prefix, f.name, maxPEMLen)
		}
		// PEM text has newlines; anything else is one line.
		if !pglink.IsPEM(f.v) && containsControl(f.v) {
			return sec, invalid(prefix+f.name, "%s%s must not contain control characters: send PEM text or a file path", prefix, f.name)
		}
	}
	if err := sec.Validate(); err != nil {
		return sec, linkError(prefix, err)
	}
	paths := sec.Paths()
	fields := make([]string, 0, len(paths))
	for f := range paths {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, field := range fields {
		p := paths[field]
		if s.cfg.KeysDir == "" {
			return sec, invalid(prefix+field, "%s%s names a file, which is refused because ROSETTA_KEYS_DIR is not set: send the PEM text instead, or have the operator of the host set ROSETTA_KEYS_DIR to the directory holding certificates and keys", prefix, field)
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(s.cfg.KeysDir, p)
		}
		resolved, ok := within(p, []string{s.cfg.KeysDir})
		if !ok {
			return sec, invalid(prefix+field, "%s%s %q is outside ROSETTA_KEYS_DIR (%s): use a file under it, or send the PEM text", prefix, field, paths[field], s.cfg.KeysDir)
		}
		switch field {
		case "sslrootcert":
			sec.RootCert = resolved
		case "sslcert":
			sec.ClientCert = resolved
		case "sslkey":
			sec.ClientKey = resolved
		}
	}
	return sec, nil
}

// linkError turns a pglink.FieldError into a 422 naming the field.
func linkError(prefix string, err error) error {
	var fe *pglink.FieldError
	if errors.As(err, &fe) {
		return invalid(prefix+fe.Field, "%s", prefix+fe.Msg)
	}
	return invalid(prefix+"sslmode", "%s", err.Error())
}

func containsControl(v string) bool {
	for _, r := range v {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return true
		}
	}
	return false
}
