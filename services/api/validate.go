package api

import (
	"regexp"
	"strings"
	"unicode"
)

// maxNameLen bounds entity names; PostgreSQL identifiers (database, user,
// publication) are limited to 63 bytes by PostgreSQL itself.
const (
	maxNameLen  = 200
	maxIdentLen = 63
	maxHostLen  = 255
)

// requiredString checks a required string field: present, not blank, at
// most max bytes, no control characters.
func requiredString(field string, v *string, max int) (string, error) {
	if v == nil {
		return "", invalid(field, "%s is required", field)
	}
	return optionalString(field, *v, max, true)
}

func optionalString(field, v string, max int, required bool) (string, error) {
	if strings.TrimSpace(v) == "" {
		if required {
			return "", invalid(field, "%s must not be empty", field)
		}
		return "", nil
	}
	if len(v) > max {
		return "", invalid(field, "%s is too long: at most %d bytes", field, max)
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return "", invalid(field, "%s must not contain control characters", field)
	}
	// Bidi overrides and zero-width characters make a name read other
	// than it is (in the console, in `rosetta tail`, in logs).
	if i := strings.IndexFunc(v, func(r rune) bool { return unicode.Is(unicode.Cf, r) }); i >= 0 {
		return "", invalid(field, "%s must not contain invisible format characters (U+%04X at byte %d)", field, []rune(v[i:])[0], i)
	}
	return v, nil
}

func validPort(field string, v *int) (int, error) {
	if v == nil {
		return 0, invalid(field, "%s is required", field)
	}
	if *v < 1 || *v > 65535 {
		return 0, invalid(field, "%s must be from 1 to 65535", field)
	}
	return *v, nil
}

// sslModes are libpq's sslmode values.
func validSSLMode(field string, v *string) (string, error) {
	if v == nil || *v == "" {
		return "", nil
	}
	switch *v {
	case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
		return *v, nil
	}
	return "", invalid(field, "%s must be one of disable, allow, prefer, require, verify-ca, verify-full", field)
}

// slotName is PostgreSQL's rule for replication slot names.
var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
