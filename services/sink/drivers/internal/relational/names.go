package relational

import (
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"
)

// TombstoneTableName names the tombstone table of one destination table
// inside the bookkeeping schema: a readable prefix of the table name plus
// a hash of the schema-qualified name, so two destination tables never
// share one and the name stays under PostgreSQL's 63-byte limit. Both
// drivers have always named them so: changing it would orphan the
// tombstones of existing destinations.
func TombstoneTableName(schema, table string) string {
	sum := sha256.Sum256([]byte(schema + "\x00" + table))
	prefix := table
	for len(prefix) > 40 {
		_, size := utf8.DecodeLastRuneInString(prefix)
		prefix = prefix[:len(prefix)-size]
	}
	return "tomb_" + prefix + "_" + hex.EncodeToString(sum[:6])
}
