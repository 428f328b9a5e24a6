package snowflake

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// Names Rosetta reserves in the destination schema. Source tables and
// columns may not start with reservedPrefix (compared case-insensitively):
// the version columns, the bookkeeping tables and the staging tables use it.
const (
	reservedPrefix = "_ROSETTA_"
	lsnCol         = "_ROSETTA_LSN"
	seqCol         = "_ROSETTA_SEQ"
	deletedCol     = "_ROSETTA_DELETED" // soft delete: the key's last change was a delete
	registryTable  = "_ROSETTA_TABLES"  // truncate watermark per destination table
	tombPrefix     = "_ROSETTA_TOMB_"   // + table: key and version of hard-deleted rows
	stagePrefix    = "_ROSETTA_STAGE_"  // + hash: a session's temporary staging table
	// colvCol is the sparse record of column versions (OBJECT): for each
	// column whose value is older than the row's version, the version key
	// (versionKey) of the change it came from, 0 when unknown; NULL (the
	// common case) when every column has the row's version
	// (services/sink/drivers/internal/guard).
	colvCol = "_ROSETTA_COLV"
	// Staging-only columns.
	delCol      = "_ROSETTA_DEL"  // the key's final state is deleted
	fullCol     = "_ROSETTA_FULL" // every staged value has the row's version
	floorLSNCol = "_ROSETTA_FLSN" // the floor: a delete's own version, or the delete before an upsert
	floorSeqCol = "_ROSETTA_FSEQ" //
	fbCol       = "_ROSETTA_FB"   // take the KEEP columns from the row at the fallback key
	keepCol     = "_ROSETTA_KEEP" // '0'/'1' per data column: take it from the fallback key's row
	fbKeyPrefix = "_ROSETTA_FB_"  // + n: the fallback key, in key order
	verPrefix   = "_ROSETTA_V_"   // + n: version key of TOASTable data column n's value; NULL: the row's
	// Columns computed in the MERGE source.
	rowKeyCol    = "_ROSETTA_SV"   // the staged row's version key
	floorKeyCol  = "_ROSETTA_FV"   // the floor's version key, NULL without one
	colKeyPrefix = "_ROSETTA_SV_"  // + n: version key of data column n's staged value
	tombLSNCol   = "_ROSETTA_TLSN" // version of the key's tombstone, if any
	tombSeqCol   = "_ROSETTA_TSEQ"
	doneCol      = "_ROSETTA_DONE" // tombstone MERGE: the key's row exists with every column known
)

// ident quotes one Snowflake identifier. Every identifier in generated SQL
// goes through it (or through qualified, which uses it): quoted identifiers
// are taken exactly, so no source name can change the statement's meaning
// or be folded to another name.
func ident(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// qualified quotes and joins a database.schema.object name.
func qualified(parts ...string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = ident(p)
	}
	return strings.Join(q, ".")
}

// destName is the Snowflake name of a PostgreSQL table or column.
//
// PostgreSQL folds unquoted identifiers to lower case and Snowflake folds
// them to upper case, so a name written without quotes on both sides is
// "orders" in one and ORDERS in the other. A source name that is entirely
// lower case (what PostgreSQL makes of an unquoted name) is therefore
// upper-cased, and users query it unquoted in Snowflake as they did in
// PostgreSQL. Any other name (one that needed quotes in PostgreSQL, like
// "OrderLines") keeps its exact spelling and needs the same quotes in
// Snowflake. Two source names that map to one Snowflake name ("id" and
// "ID") are rejected by mapColumns.
func destName(pg string) string {
	if strings.ToLower(pg) == pg {
		return strings.ToUpper(pg)
	}
	return pg
}

// maxIdentLen is Snowflake's limit on identifier length (in characters).
const maxIdentLen = 255

// checkSourceName rejects names Rosetta cannot map: reserved or too long.
func checkSourceName(what, pg string) error {
	if pg == "" {
		return fmt.Errorf("%s has an empty name", what)
	}
	if strings.HasPrefix(strings.ToUpper(pg), reservedPrefix) {
		return fmt.Errorf("%s %q uses the prefix %s that Rosetta reserves in Snowflake", what, pg, reservedPrefix)
	}
	if n := len([]rune(pg)); n > maxIdentLen-len(tombPrefix) {
		return fmt.Errorf("%s %q is %d characters long; Snowflake names hold %d and Rosetta adds up to %d", what, pg, n, maxIdentLen, len(tombPrefix))
	}
	return nil
}

// unquotedIdent is what Snowflake accepts as an unquoted identifier.
var unquotedIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)

// configName resolves a database or schema name from the destination's
// config the way Snowflake resolves what a user types: a plain identifier
// (letters, digits, _ and $, not starting with a digit) is case-insensitive
// and stored upper-cased; a name in double quotes ("My Schema") is taken
// exactly, with "" standing for one quote. Anything else is an error that
// says how to write it.
func configName(field, v string) (string, error) {
	switch {
	case v == "":
		return "", fmt.Errorf("%s is empty", field)
	case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
		inner := v[1 : len(v)-1]
		if inner == "" || strings.Contains(strings.ReplaceAll(inner, `""`, ""), `"`) {
			return "", fmt.Errorf("%s %s is not a valid quoted identifier (a quote inside is written as \"\")", field, v)
		}
		return strings.ReplaceAll(inner, `""`, `"`), nil
	case unquotedIdent.MatchString(v):
		return strings.ToUpper(v), nil
	}
	return "", fmt.Errorf("%s %q is not a plain Snowflake identifier: write it in double quotes, e.g. %q, to use that exact name", field, v, `"`+v+`"`)
}

// shortHash is a stable, case-preserving suffix for generated names.
func shortHash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return strings.ToUpper(hex.EncodeToString(sum[:6]))
}

// accountPattern is an account identifier: org-account, or a legacy
// locator with optional region and cloud (xy12345.eu-west-1.aws).
var accountPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,2}$`)

// normalizeAccount checks an account identifier and returns the one
// gosnowflake derives the right host from. AWS US West (Oregon),
// us-west-2, is the one region whose legacy locator URL carries no region
// (xy12345.snowflakecomputing.com): xy12345.us-west-2 names a host that
// does not exist, so the region is dropped. A URL or host name is refused
// with what to give instead.
func normalizeAccount(a string) (string, error) {
	a = strings.TrimSpace(a)
	lower := strings.ToLower(a)
	if strings.Contains(lower, "snowflakecomputing") || strings.Contains(lower, "://") || strings.ContainsAny(a, "/: ") {
		return "", fmt.Errorf("account %q is a URL or host name: give the account identifier, the part of the account URL "+
			"before .snowflakecomputing.com (myorg-myaccount, or a locator such as xy12345.eu-west-1)", a)
	}
	if !accountPattern.MatchString(a) {
		return "", fmt.Errorf("account %q is not an account identifier (myorg-myaccount, or a locator such as xy12345.eu-west-1)", a)
	}
	for _, region := range []string{".us-west-2.aws", ".us-west-2"} {
		if strings.HasSuffix(lower, region) {
			return a[:len(a)-len(region)], nil
		}
	}
	return a, nil
}
