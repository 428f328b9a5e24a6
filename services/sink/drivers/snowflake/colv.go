package snowflake

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
)

// The column versions of the version guard (services/sink/drivers/
// internal/guard) in Snowflake SQL.
//
// A version (lsn, seq) is compared as one NUMBER(38,0), its version key
// lsn·10^19 + seq + 1: order-preserving (seq + 1 < 10^19), below 10^38
// (lsn < 2^63, see bindLSN), and 0 for unknown, (0, -1). A row's key is
// computed from its version columns (rowKey); the sparse record
// _ROSETTA_COLV holds the keys of the columns that differ from it.

const (
	versionScale = "10000000000000000000" // 10^19
	keyType      = "NUMBER(38,0)"
)

// versionKey is v's version key as decimal text.
func versionKey(v contracts.Version) string {
	low := uint64(v.Seq + 1) // seq is -1 (unknown) or a position >= 0
	if v.LSN == 0 {
		return strconv.FormatUint(low, 10)
	}
	return strconv.FormatUint(v.LSN, 10) + fmt.Sprintf("%019d", low)
}

// parseVersionKey reads a version key's decimal text.
func parseVersionKey(s string) (contracts.Version, error) {
	s = strings.TrimSpace(s)
	hi, lo := "0", s
	if len(s) > 19 {
		hi, lo = s[:len(s)-19], s[len(s)-19:]
	}
	lsn, err1 := strconv.ParseUint(hi, 10, 64)
	low, err2 := strconv.ParseUint(lo, 10, 64)
	if err1 != nil || err2 != nil {
		return contracts.Version{}, fmt.Errorf("version key %q is not a number", s)
	}
	return contracts.Version{LSN: lsn, Seq: int64(low) - 1}, nil
}

// fixedTypes are PostgreSQL's fixed-length base types: their values are
// never TOASTed, so an update always sends them and their version is
// always the row's.
var fixedTypes = map[string]bool{
	"smallint": true, "integer": true, "bigint": true, "real": true, "double precision": true, "boolean": true,
	"date": true, "time without time zone": true, "time with time zone": true, "timestamp without time zone": true,
	"timestamp with time zone": true, "interval": true, "uuid": true, "oid": true, "money": true, "macaddr": true,
	"macaddr8": true, "pg_lsn": true, "point": true, `"char"`: true,
}

var typmod = regexp.MustCompile(`\([0-9, ]*\)`)

// toastable reports whether values of a PostgreSQL base type (as
// format_type prints it) can be TOASTed, and so be left out of an update
// as unchanged. Only such columns get per-column versions in SQL; an
// unknown type counts as toastable.
func toastable(base string) bool {
	if base == "" {
		return false // a kept column the source dropped: always staged NULL
	}
	return !fixedTypes[strings.TrimSpace(typmod.ReplaceAllString(base, ""))]
}

// rowKey is the version key of the row aliased a.
func rowKey(a string) string {
	return "(" + col(a, lsnCol) + " * " + versionScale + " + " + col(a, seqCol) + " + 1)"
}

// storedKey is the version key of column name's value in the target row
// aliased a: its record entry, else the row's.
func storedKey(a, name string) string {
	return "COALESCE(GET(" + col(a, colvCol) + ", " + stringLiteral(name) + ")::" + keyType + ", " + rowKey(a) + ")"
}

// recordSQL builds a record from per-column entry expressions (SQL NULL
// leaves the entry out, as OBJECT_INSERT does). With no entry it is NULL.
func recordSQL(names, entries []string) string {
	if len(names) == 0 {
		return "NULL"
	}
	r := "OBJECT_CONSTRUCT()"
	for i, n := range names {
		r = "OBJECT_INSERT(" + r + ", " + stringLiteral(n) + ", " + entries[i] + ")"
	}
	return r
}

// hasUnknown is true when the target row aliased a has a column among
// names that no change provided.
func hasUnknown(a string, names []string) string {
	if len(names) == 0 {
		return "FALSE"
	}
	var or []string
	for _, n := range names {
		or = append(or, "GET("+col(a, colvCol)+", "+stringLiteral(n)+")::"+keyType+" = 0")
	}
	return "COALESCE(" + strings.Join(or, " OR ") + ", FALSE)"
}

// invalidateItems is the SET list that turns the columns of target row t
// (names: every data column of the table) whose value is older than floor
// (a version key expression) into unknown: NULL, key 0.
func invalidateItems(names []string, floor string) []string {
	var set, entries []string
	for _, n := range names {
		st := storedKey("t", n)
		set = append(set, ident(n)+" = IFF("+st+" < "+floor+", NULL, "+col("t", n)+")")
		entries = append(entries, "NULLIF(IFF("+st+" < "+floor+", 0, "+st+"), "+rowKey("t")+")")
	}
	return append(set, ident(colvCol)+" = "+recordSQL(names, entries))
}

// truncateInvalidateSQL turns the columns older than a truncate into
// unknown in rows newer than it that have a record (binds lsn, seq, lsn,
// lsn, seq): a change from before the truncate filled them late.
func truncateInvalidateSQL(target string, names []string) string {
	return "UPDATE " + target + " AS t SET " + strings.Join(invalidateItems(names, col("w", "K")), ", ") +
		" FROM (SELECT ?::" + versionType + " * " + versionScale + " + ?::" + versionType + " + 1 AS " + ident("K") + ") AS w" +
		" WHERE " + col("t", colvCol) + " IS NOT NULL AND NOT " + olderThanBound("t")
}

// tableDataColumns lists the table's columns that hold source values: not
// the key, not Rosetta's.
func tableDataColumns(st *tableState, s shape) []string {
	keys := map[string]bool{}
	for _, k := range s.keyCols() {
		keys[k.name] = true
	}
	var out []string
	for name := range st.types {
		if !keys[name] && !strings.HasPrefix(strings.ToUpper(name), reservedPrefix) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// otherColumns are the table's data columns the shape does not stage.
func otherColumns(all []string, s shape) []string {
	in := map[string]bool{}
	for _, c := range s.cols {
		in[c.name] = true
	}
	var out []string
	for _, n := range all {
		if !in[n] {
			out = append(out, n)
		}
	}
	return out
}

// tombGuardSQL maintains the tombstones after mergeSQL when the batch has
// deletes, re-created keys or partial rows (binds the watermark lsn, lsn,
// seq twice). A floor (a delete, or the delete before a re-created row)
// leaves a tombstone while its key has no row or a row with unknown
// columns, unless the truncate watermark covers it; an upsert removes an
// older tombstone once its row exists with every column known. names are
// the table's data columns.
func tombGuardSQL(o objects, s shape, names []string) string {
	var keyNames, keyVals, sel, part []string
	for _, k := range s.keyCols() {
		keyNames = append(keyNames, ident(k.name))
		keyVals = append(keyVals, col("s", k.name))
		sel = append(sel, col("s", k.name))
		part = append(part, col("s", k.name))
	}
	sel = append(sel, col("s", delCol), col("s", lsnCol), col("s", seqCol), col("s", floorLSNCol), col("s", floorSeqCol),
		"("+col("t", lsnCol)+" IS NOT NULL AND NOT "+hasUnknown("t", names)+") AS "+ident(doneCol))
	fl, fs := col("s", floorLSNCol), col("s", floorSeqCol)
	aboveMark := "(" + fl + " > ? OR (" + fl + " = ? AND " + fs + " > ?))"
	needTomb := fl + " IS NOT NULL AND NOT " + col("s", doneCol) + " AND " + aboveMark
	return "MERGE INTO " + o.tomb + " AS x USING (SELECT " + strings.Join(sel, ", ") + " FROM " + o.stage + " AS s LEFT JOIN " + o.target +
		" AS t ON " + keyMatch("t", "s", s) + " QUALIFY ROW_NUMBER() OVER (PARTITION BY " + strings.Join(part, ", ") + " ORDER BY " +
		col("t", lsnCol) + " DESC NULLS LAST, " + col("t", seqCol) + " DESC NULLS LAST) = 1) AS s ON " + keyMatch("x", "s", s) +
		" WHEN MATCHED AND NOT " + col("s", delCol) + " AND " + col("s", doneCol) + " AND " +
		newer(col("s", lsnCol), col("s", seqCol), col("x", lsnCol), col("x", seqCol)) + " THEN DELETE" +
		" WHEN MATCHED AND " + needTomb + " AND " + newer(fl, fs, col("x", lsnCol), col("x", seqCol)) + " THEN UPDATE SET " +
		ident(lsnCol) + " = " + fl + ", " + ident(seqCol) + " = " + fs +
		" WHEN NOT MATCHED AND " + needTomb + " THEN INSERT (" + strings.Join(append(keyNames, ident(lsnCol), ident(seqCol)), ", ") +
		") VALUES (" + strings.Join(append(keyVals, fl, fs), ", ") + ")"
}

// storedAsStaged is a target column's value as its staging column holds
// it: JSON as text.
func storedAsStaged(c stageColumn, v string) string {
	if c.typ.kind == kindVariant {
		return "TO_JSON(" + v + ")"
	}
	return v
}

// fillStageSQL sets the KEEP columns of staged moved rows from the row
// stored at their fallback key, before anything of the batch is applied.
func fillStageSQL(o objects, s shape) string {
	var set, on []string
	for i, c := range s.cols {
		if c.keep && !c.key {
			set = append(set, ident(c.name)+" = IFF(SUBSTR("+col("s", keepCol)+", "+strconv.Itoa(i+1)+", 1) = '1', "+
				storedAsStaged(c, col("t", c.name))+", "+col("s", c.name)+")")
		}
	}
	for i, k := range s.keyCols() {
		on = append(on, s.keyEq(col("t", k.name), col("s", fbKeyPrefix+strconv.Itoa(i+1))))
	}
	return "UPDATE " + o.stage + " AS s SET " + strings.Join(set, ", ") + " FROM " + o.target + " AS t WHERE " + col("s", fbCol) +
		" AND " + strings.Join(on, " AND ")
}

// extraFillSQL sets one column of one staged row from the row stored at a
// second old key (binds the old key's values, then the row's key's).
func extraFillSQL(o objects, s shape, c stageColumn) string {
	var from, match []string
	for _, k := range s.keyCols() {
		from = append(from, s.keyEq(col("t", k.name), "?::"+k.typ.sql()))
		match = append(match, s.keyEq(col("s", k.name), "?::"+k.typ.sql()))
	}
	return "UPDATE " + o.stage + " AS s SET " + ident(c.name) + " = " + storedAsStaged(c, col("t", c.name)) + " FROM " + o.target +
		" AS t WHERE " + strings.Join(from, " AND ") + " AND " + strings.Join(match, " AND ")
}

// fallbackVersionsSQL reads the version keys of columns at n old keys, one
// SELECT per key tagged with its index (binds each key's values).
func fallbackVersionsSQL(target string, s shape, names []string, n int) string {
	var where []string
	for _, k := range s.keyCols() {
		where = append(where, s.keyEq(col("t", k.name), "?::"+k.typ.sql()))
	}
	var sel []string
	for _, name := range names {
		sel = append(sel, storedKey("t", name)+"::VARCHAR")
	}
	parts := make([]string, n)
	for i := range parts {
		parts[i] = "SELECT " + strconv.Itoa(i) + " AS " + ident("I") + ", " + strings.Join(sel, ", ") + " FROM " + target + " AS t WHERE " +
			strings.Join(where, " AND ")
	}
	return strings.Join(parts, " UNION ALL ")
}
