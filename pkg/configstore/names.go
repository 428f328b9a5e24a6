package configstore

import "strconv"

// DerivedName is the replication slot and publication name of a source
// whose name was not given: rosetta_<installation id>_<source id>. It is a
// valid unquoted PostgreSQL identifier and slot name (lower case letters,
// digits and underscores, at most 8+12+1+19 = 40 characters), and unique per
// installation, so two installations capturing from one cluster never
// share a slot.
func DerivedName(installationID string, sourceID int64) string {
	return "rosetta_" + installationID + "_" + strconv.FormatInt(sourceID, 10)
}

// IsSecretField reports whether a destination config field is a secret:
// it is stored encrypted, apart from the config, and never shown.
func IsSecretField(name string) bool {
	switch name {
	case "password", "private_key", "private_key_passphrase", "sslkey":
		return true
	}
	return false
}
