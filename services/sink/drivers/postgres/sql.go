package postgres

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// Names Rosetta reserves in a destination. Source columns may not start
// with reservedPrefix: the version columns and the staging table's
// bookkeeping columns use it.
const (
	bookkeepingSchema = "_rosetta"
	registryTable     = "tables"
	reservedPrefix    = "_rosetta_"
	lsnCol            = "_rosetta_lsn"
	seqCol            = "_rosetta_seq"
	// colvCol is the sparse record of column versions (jsonb): for each
	// column whose value is older than the row's version, [lsn, seq] of
	// the change it came from, [0, -1] when unknown. NULL (the common
	// case) when every column has the row's version. In staging, the
	// versions of the staged values, on the same terms.
	colvCol = "_rosetta_colv"
	// Staging-only columns.
	delCol      = "_rosetta_del"  // boolean: the key's final state is deleted
	floorLSNCol = "_rosetta_flsn" // the floor: a delete's own version, or the delete before an upsert
	floorSeqCol = "_rosetta_fseq"
	inColPrefix = "_rosetta_in_" // _rosetta_in_<pos>: the sent text of a checked column
)

// ident quotes a (possibly qualified) identifier. Every identifier in
// generated SQL goes through it.
func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// typePattern accepts the type names format_type prints for built-in
// types: "char", or lower-case words with an optional list of (possibly
// negative) integer modifiers, optional trailing words and array brackets,
// e.g. "numeric(10,2)", "numeric(3,-2)" (PostgreSQL 15 allows a negative
// scale, and one above the precision), "timestamp(3) with time zone",
// "character varying(20)[]". Nothing else reaches DDL: other type names
// become text.
var typePattern = regexp.MustCompile(`^("char"|[a-z][a-z0-9_ ]*(\(-?[0-9]+(, ?-?[0-9]+)*\))?[a-z ]*)(\[\])*$`)

// columnType is the destination type for a source column's base type.
func columnType(baseType string) string {
	if len(baseType) <= 100 && typePattern.MatchString(baseType) {
		return baseType
	}
	return "text"
}

// tombstoneTableName names the tombstone table of one destination table
// inside _rosetta (relational.TombstoneTableName).
func tombstoneTableName(schema, table string) string {
	return relational.TombstoneTableName(schema, table)
}

// stageColumn is one data column of a staging table.
type stageColumn struct {
	Name string
	Type string // the destination column's type, as the catalog prints it
	Key  bool
	// Check is the type the values were sent as (columnType of the
	// change's base_type) when the destination column has another type
	// that may not hold every such value exactly: an existing table, or
	// a source column whose type changed. Empty: no check needed.
	Check string
}

// needsCheck reports whether a destination column of type dest may change
// values sent as type sent: the same type reads back what it printed, and
// text and unbounded varchar store the text as it is; any other type (a
// narrower numeric, a lower timestamp precision, a shorter varchar, real
// for double precision) may round or trim without an error.
func needsCheck(dest, sent string) bool {
	return dest != sent && dest != "text" && dest != "character varying"
}

// statements is the SQL of one table shape: the staging table and every
// statement Apply runs against it, implementing the version guard's rule
// (services/sink/drivers/internal/guard) in set-based SQL. Values are bound
// ($1, $2 …) or copied, never spliced in.
type statements struct {
	createStage string
	copy        string
	// truncate* take $1 = truncate LSN, $2 = seq; truncateMark also
	// $3 = schema, $4 = table.
	truncateRows, truncateMark, truncateTombs string
	// deleteRows removes rows older than a staged floor (a delete, or the
	// delete an upsert followed in its batch); invalidateRows turns
	// columns of newer rows older than the floor into unknown; tombstone
	// records floors whose key has no row, or one with unknown columns,
	// left ($1 = schema, $2 = table for the truncate watermark).
	deleteRows, invalidateRows, tombstone string
	// update merges staged upserts into stored rows per column; insert
	// adds the rest (both $1 = schema, $2 = table for the truncate
	// watermark); untomb drops tombstones older than a staged upsert whose
	// row now has every column known.
	update, insert, untomb string
	// checks select, per checked column, one staged row whose value the
	// destination type does not hold exactly: its sent text, the stored
	// value's text and its key (as text[]).
	checks []columnCheck
}

// columnCheck is the exactness check of one staged column.
type columnCheck struct {
	col stageColumn
	sql string
}

// buildStatements generates the SQL of one shape: target and tomb are the
// destination and tombstone tables, stage the temporary staging table, cols
// the batch's columns (key columns flagged) in staging order.
func buildStatements(target, tomb, stage string, cols []stageColumn, x colvSQL) statements {
	var keys, data []stageColumn
	for _, c := range cols {
		if c.Key {
			keys = append(keys, c)
		} else {
			data = append(data, c)
		}
	}
	match := func(l, r string) string {
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = l + "." + ident(k.Name) + " = " + r + "." + ident(k.Name)
		}
		return strings.Join(parts, " AND ")
	}
	version := func(a string) string { return "(" + a + "." + ident(lsnCol) + ", " + a + "." + ident(seqCol) + ")" }
	floor := "(s." + ident(floorLSNCol) + ", s." + ident(floorSeqCol) + ")"
	watermark := "(SELECT w.truncate_lsn, w.truncate_seq FROM " + ident(bookkeepingSchema, registryTable) +
		" AS w WHERE w.schema_name = $1 AND w.table_name = $2)"
	// A change older than the collect floor finds no tombstone older than
	// the floor any more (collect.go): it inserts and fills nothing, as
	// they made it do.
	collected := "(SELECT w.collect_lsn, w.collect_seq FROM " + ident(bookkeepingSchema, registryTable) +
		" AS w WHERE w.schema_name = $1 AND w.table_name = $2)"
	aboveFloors := version("s") + " > " + watermark + " AND " + version("s") + " >= " + collected

	var st statements
	var defs, names, sel []string
	for _, c := range cols {
		defs = append(defs, ident(c.Name)+" "+c.Type)
		names = append(names, ident(c.Name))
		sel = append(sel, "s."+ident(c.Name))
	}
	meta := []string{ident(delCol), ident(lsnCol), ident(seqCol), ident(colvCol), ident(floorLSNCol), ident(floorSeqCol)}
	defs = append(defs, ident(delCol)+" boolean NOT NULL", ident(lsnCol)+" bigint NOT NULL", ident(seqCol)+" bigint NOT NULL",
		ident(colvCol)+" jsonb", ident(floorLSNCol)+" bigint", ident(floorSeqCol)+" bigint")
	var keyText []string
	for _, k := range keys {
		keyText = append(keyText, "s."+ident(k.Name)+"::text")
	}
	for i, c := range cols {
		if c.Check == "" {
			continue
		}
		n := ident(inColPrefix + strconv.Itoa(i+1))
		defs = append(defs, n+" text")
		meta = append(meta, n)
		// Both sides go through the sent type and its text output, so
		// that equal values compare equal whatever their spelling
		// (1.500 in numeric(10,3) is 1.5 sent as numeric(10,1)) and
		// types without an equality operator (json, point) compare too.
		st.checks = append(st.checks, columnCheck{col: c, sql: "SELECT s." + n + ", s." + ident(c.Name) + "::text, ARRAY[" +
			strings.Join(keyText, ", ") + "] FROM " + ident(stage) + " AS s WHERE NOT s." + ident(delCol) + " AND s." + n +
			" IS NOT NULL AND (s." + ident(c.Name) + "::text::" + c.Check + ")::text IS DISTINCT FROM (s." + n + "::" + c.Check +
			")::text LIMIT 1"})
	}
	// ON COMMIT DELETE ROWS: the staging table is empty at the start of
	// every transaction, committed or rolled back.
	st.createStage = "CREATE TEMPORARY TABLE " + ident(stage) + " (" + strings.Join(defs, ", ") + ") ON COMMIT DELETE ROWS"
	st.copy = "COPY " + ident(stage) + " (" + strings.Join(append(append([]string{}, names...), meta...), ", ") + ") FROM STDIN"

	st.truncateRows = "DELETE FROM " + target + " AS t WHERE " + version("t") + " < ($1, $2)"
	st.truncateMark = "UPDATE " + ident(bookkeepingSchema, registryTable) + " AS w SET truncate_lsn = $1, truncate_seq = $2" +
		" WHERE w.schema_name = $3 AND w.table_name = $4 AND (w.truncate_lsn, w.truncate_seq) < ($1, $2)"
	st.truncateTombs = "DELETE FROM " + tomb + " AS x WHERE " + version("x") + " < ($1, $2)"

	var keyNames, keySel []string
	for _, k := range keys {
		keyNames = append(keyNames, ident(k.Name))
		keySel = append(keySel, "s."+ident(k.Name))
	}
	hasFloor := "s." + ident(floorLSNCol) + " IS NOT NULL"
	st.deleteRows = "DELETE FROM " + target + " AS t USING " + ident(stage) + " AS s WHERE " + hasFloor +
		" AND " + match("t", "s") + " AND " + version("t") + " < " + floor
	if len(data) > 0 && x.has {
		st.invalidateRows = "UPDATE " + target + " AS t SET " + x.invalidateSet(data, "jsonb_build_array(s."+ident(floorLSNCol)+", s."+ident(floorSeqCol)+")") +
			" FROM " + ident(stage) + " AS s WHERE " + hasFloor + " AND " + match("t", "s") + " AND t." + ident(colvCol) + " IS NOT NULL AND " +
			version("t") + " > " + floor
	}
	st.tombstone = "INSERT INTO " + tomb + " AS x (" + strings.Join(keyNames, ", ") + ", " + ident(lsnCol) + ", " + ident(seqCol) + ")" +
		" SELECT " + strings.Join(keySel, ", ") + ", s." + ident(floorLSNCol) + ", s." + ident(floorSeqCol) + " FROM " + ident(stage) + " AS s" +
		" WHERE " + hasFloor + " AND " + floor + " > " + watermark +
		" AND NOT EXISTS (SELECT 1 FROM " + target + " AS t WHERE " + match("t", "s") + " AND NOT " + x.hasUnknown("t") + ")" +
		" ON CONFLICT (" + strings.Join(keyNames, ", ") + ") DO UPDATE SET " + ident(lsnCol) + " = EXCLUDED." + ident(lsnCol) +
		", " + ident(seqCol) + " = EXCLUDED." + ident(seqCol) + " WHERE " + version("x") + " < " + version("EXCLUDED")

	// fast: a full change newer than the stored row, the common case,
	// overwrites every column; anything else merges per column.
	fast := "s." + ident(colvCol) + " IS NULL AND " + version("t") + " < " + version("s")
	set := make([]string, 0, len(data)+3)
	for _, c := range data {
		set = append(set, ident(c.Name)+" = CASE WHEN "+fast+" THEN s."+ident(c.Name)+" WHEN "+x.colVersion("t", c.Name)+" < "+
			x.colVersion("s", c.Name)+" THEN s."+ident(c.Name)+" ELSE t."+ident(c.Name)+" END")
	}
	if x.has {
		set = append(set, ident(colvCol)+" = CASE WHEN "+fast+" THEN NULL ELSE "+x.mergedColVersions(data)+" END")
	}
	newer := version("t") + " < " + version("s")
	set = append(set, ident(lsnCol)+" = CASE WHEN "+newer+" THEN s."+ident(lsnCol)+" ELSE t."+ident(lsnCol)+" END",
		ident(seqCol)+" = CASE WHEN "+newer+" THEN s."+ident(seqCol)+" ELSE t."+ident(seqCol)+" END")
	late := ""
	if x.has {
		// A late older change (or the same version again, carrying
		// older columns) may still fill columns of a row with column
		// versions, unless a delete or truncate newer than it is known.
		late = " OR t." + ident(colvCol) + " IS NOT NULL AND " + version("t") + " >= " + version("s") + " AND " + aboveFloors +
			" AND NOT EXISTS (SELECT 1 FROM " + tomb + " AS x WHERE " + match("x", "s") + " AND " + version("x") + " > " + version("s") + ")"
	}
	st.update = "UPDATE " + target + " AS t SET " + strings.Join(set, ", ") + " FROM " + ident(stage) + " AS s" +
		" WHERE NOT s." + ident(delCol) + " AND " + match("t", "s") + " AND (" + newer + late + ")"
	insCols, insSel := ident(lsnCol)+", "+ident(seqCol), "s."+ident(lsnCol)+", s."+ident(seqCol)
	if x.has {
		insCols, insSel = insCols+", "+ident(colvCol), insSel+", s."+ident(colvCol)
	}
	st.insert = "INSERT INTO " + target + " (" + strings.Join(names, ", ") + ", " + insCols + ")" +
		" SELECT " + strings.Join(sel, ", ") + ", " + insSel + " FROM " + ident(stage) + " AS s" +
		" WHERE NOT s." + ident(delCol) +
		" AND NOT EXISTS (SELECT 1 FROM " + target + " AS t WHERE " + match("t", "s") + ")" +
		" AND NOT EXISTS (SELECT 1 FROM " + tomb + " AS x WHERE " + match("x", "s") + " AND " + version("x") + " >= " + version("s") + ")" +
		" AND " + aboveFloors
	st.untomb = "DELETE FROM " + tomb + " AS x USING " + ident(stage) + " AS s WHERE NOT s." + ident(delCol) +
		" AND " + match("x", "s") + " AND " + version("x") + " < " + version("s") +
		" AND EXISTS (SELECT 1 FROM " + target + " AS t WHERE " + match("t", "s") + " AND NOT " + x.hasUnknown("t") + ")"
	return st
}

// DDL of the bookkeeping schema, run under the DDL lock.
var bookkeepingDDL = []string{
	"CREATE SCHEMA IF NOT EXISTS " + ident(bookkeepingSchema),
	"CREATE TABLE IF NOT EXISTS " + ident(bookkeepingSchema, registryTable) + ` (
	schema_name text NOT NULL,
	table_name text NOT NULL,
	tombstone_table text NOT NULL UNIQUE,
	truncate_lsn bigint NOT NULL DEFAULT 0,
	truncate_seq bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (schema_name, table_name))`,
}

// collectFloorDDL adds the collect floor (collect.go) to a registry created
// before it; ensureCollectFloor runs it only when the columns are missing,
// as ALTER TABLE locks the registry every Apply reads.
var collectFloorDDL = []string{
	"ALTER TABLE " + ident(bookkeepingSchema, registryTable) + " ADD COLUMN IF NOT EXISTS collect_lsn bigint NOT NULL DEFAULT 0",
	"ALTER TABLE " + ident(bookkeepingSchema, registryTable) + " ADD COLUMN IF NOT EXISTS collect_seq bigint NOT NULL DEFAULT 0",
}

// createTableSQL creates a destination table with the version columns and
// the key as primary key.
func createTableSQL(target string, cols []stageColumn) string {
	var defs, keys []string
	for _, c := range cols {
		defs = append(defs, ident(c.Name)+" "+c.Type)
		if c.Key {
			keys = append(keys, ident(c.Name))
		}
	}
	defs = append(defs, ident(lsnCol)+" bigint NOT NULL", ident(seqCol)+" bigint NOT NULL", ident(colvCol)+" jsonb")
	if len(keys) > 0 {
		defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	}
	return "CREATE TABLE IF NOT EXISTS " + target + " (" + strings.Join(defs, ", ") + ")"
}

// createTombstoneSQL creates a tombstone table keyed like its destination.
func createTombstoneSQL(tomb string, keys []stageColumn) string {
	var defs, names []string
	for _, k := range keys {
		defs = append(defs, ident(k.Name)+" "+k.Type)
		names = append(names, ident(k.Name))
	}
	defs = append(defs, ident(lsnCol)+" bigint NOT NULL", ident(seqCol)+" bigint NOT NULL",
		"PRIMARY KEY ("+strings.Join(names, ", ")+")")
	return "CREATE TABLE IF NOT EXISTS " + tomb + " (" + strings.Join(defs, ", ") + ")"
}

func addColumnSQL(target string, c stageColumn) string {
	return "ALTER TABLE " + target + " ADD COLUMN IF NOT EXISTS " + ident(c.Name) + " " + c.Type
}

// addVersionSQL adopts a table that exists without version columns: its
// rows count as older than any change.
func addVersionSQL(target, col string) string {
	return fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s bigint NOT NULL DEFAULT 0", target, ident(col))
}
