package duckdb

import (
	"strconv"
	"strings"

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
	// colvCol is the sparse record of column versions,
	// MAP(VARCHAR, BIGINT[]): for each column whose value is older than
	// the row's version, [lsn, seq] of the change it came from, [0, -1]
	// when unknown; NULL (the common case) when every column has the
	// row's version (services/sink/drivers/internal/guard). In staging,
	// the versions of the staged values, on the same terms.
	colvCol = "_rosetta_colv"
	// Staging-only columns.
	delCol        = "_rosetta_del"   // the key's final state is deleted
	floorLSNCol   = "_rosetta_flsn"  // the floor: a delete's own version, or the delete before an upsert
	floorSeqCol   = "_rosetta_fseq"  //
	fbFlagCol     = "_rosetta_fb"    // fill columns from the row stored at the fallback key
	fbColPrefix   = "_rosetta_fb_"   // _rosetta_fb_1..n: the fallback key, in key order
	keepColPrefix = "_rosetta_keep_" // _rosetta_keep_<pos>: take column <pos> from the fallback key's row
	// loadAlias names the rows the appender sends inside the load
	// statement; loadColPrefix + 1..n their columns.
	loadAlias     = "_rosetta_rows"
	loadColPrefix = "w"
)

// ident quotes a (possibly qualified) identifier for DuckDB. Every
// identifier in generated SQL goes through it.
func ident(parts ...string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(q, ".")
}

// tombstoneTableName names the tombstone table of one destination table
// inside _rosetta (relational.TombstoneTableName).
func tombstoneTableName(schema, table string) string {
	return relational.TombstoneTableName(schema, table)
}

// stageColumn is one data column of a staging table.
type stageColumn struct {
	Name string
	Type string // the destination column's type, as DuckDB's catalog prints it
	Key  bool
	// Keep is set when some row of the batch takes the column from the
	// row stored at its old key (guard.FillSources): the stage then has
	// a flag column saying, per row, whether to take it.
	Keep bool
	conv converter
}

// statements is the SQL of one batch shape: the staging table and every
// statement Apply runs against it, implementing the version guard's rule
// (services/sink/drivers/internal/guard). Values are bound ($1, $2 …) or
// appended, never spliced in.
type statements struct {
	// createStage creates the staging table; clearStage replaces it with
	// an empty one before each batch is staged.
	createStage, clearStage string
	// loadPrefix is "INSERT INTO <stage> SELECT <casts> FROM ": load
	// without its source, the rows named loadAlias with columns w1..wn.
	loadPrefix string
	// load inserts the appended rows into the staging table, casting
	// each from its wire type to the column's type.
	load string
	// fill sets the flagged columns of moved rows from the row stored at
	// their fallback key.
	fill string
	// truncate* take $1 = truncate LSN, $2 = seq; truncateMark also
	// $3 = schema, $4 = table.
	truncateRows, truncateMark, truncateTombs string
	// deleteRows removes rows older than a staged floor; invalidateRows
	// turns columns of newer rows older than it into unknown; tombUpdate
	// and tombInsert record floors whose key has no row, or one with
	// unknown columns, left ($1 = schema, $2 = table).
	deleteRows, invalidateRows, tombUpdate, tombInsert string
	// update merges staged upserts into stored rows per column; insert
	// adds the rest (both $1 = schema, $2 = table for the truncate
	// watermark); untomb drops tombstones older than a staged upsert
	// whose row now has every column known.
	update, insert, untomb string
}

// stageLayout is the column order of a staging table (and of the rows the
// loader appends): the data columns (cols), then delete flag, version,
// fallback flag, column versions, floor, fallback key in key order, and
// the keep flags of the columns with Keep, in column order.
type stageLayout struct {
	cols  []stageColumn
	keys  []int // positions in cols of the key columns, in key order
	keeps []int // positions in cols of the columns with Keep
}

func newLayout(cols []stageColumn) stageLayout {
	l := stageLayout{cols: cols}
	for i, c := range cols {
		if c.Key {
			l.keys = append(l.keys, i)
		}
		if c.Keep && !c.Key {
			l.keeps = append(l.keeps, i)
		}
	}
	return l
}

// metaWidth is the number of bookkeeping columns between the data columns
// and the fallback key: del, lsn, seq, fb, colv, flsn, fseq.
const metaWidth = 7

// width is the number of staging columns.
func (l stageLayout) width() int { return len(l.cols) + metaWidth + len(l.keys) + len(l.keeps) }

func keepCol(pos int) string { return keepColPrefix + strconv.Itoa(pos+1) }
func fbCol(k int) string     { return fbColPrefix + strconv.Itoa(k+1) }

// buildStatements generates the SQL of one shape: target and tomb are the
// quoted destination and tombstone tables, stage the temporary staging
// table's name.
func buildStatements(target, tomb, stage string, l stageLayout) statements {
	st := ident(stage)
	match := func(a, b string, fallback bool) string {
		parts := make([]string, len(l.keys))
		for i, k := range l.keys {
			rc := ident(l.cols[k].Name)
			if fallback {
				rc = ident(fbCol(i))
			}
			parts[i] = a + "." + ident(l.cols[k].Name) + " = " + b + "." + rc
		}
		return strings.Join(parts, " AND ")
	}
	version := func(a string) string { return "(" + a + "." + ident(lsnCol) + ", " + a + "." + ident(seqCol) + ")" }
	const param12 = "(CAST($1 AS BIGINT), CAST($2 AS BIGINT))"
	floor := "(s." + ident(floorLSNCol) + ", s." + ident(floorSeqCol) + ")"
	hasFloor := "s." + ident(floorLSNCol) + " IS NOT NULL"
	// aboveWatermark: version v is newer than the table's last truncate.
	aboveWatermark := func(v string) string {
		return "NOT EXISTS (SELECT 1 FROM " + ident(bookkeepingSchema, registryTable) + " AS w WHERE w.schema_name = $1 AND w.table_name = $2" +
			" AND (w.truncate_lsn, w.truncate_seq) >= " + v + ")"
	}
	// aboveFloors: version v is newer than the table's last truncate and
	// not older than its collect floor (collect.go): a change older than
	// the floor finds no tombstone older than the floor any more, and
	// inserts and fills nothing, as they made it do.
	aboveFloors := func(v string) string {
		return "NOT EXISTS (SELECT 1 FROM " + ident(bookkeepingSchema, registryTable) + " AS w WHERE w.schema_name = $1 AND w.table_name = $2" +
			" AND ((w.truncate_lsn, w.truncate_seq) >= " + v + " OR (COALESCE(w.collect_lsn, 0), COALESCE(w.collect_seq, 0)) > " + v + "))"
	}
	var data []stageColumn
	for _, c := range l.cols {
		if !c.Key {
			data = append(data, c)
		}
	}

	var s statements
	var defs, names, sel, exprs []string
	wire := 0
	load := func(typ string, conv converter) {
		wire++
		e := ident(loadAlias, loadColPrefix+strconv.Itoa(wire))
		if w := wireName(conv.wire); w != typ {
			e = "CAST(" + e + " AS " + typ + ")"
		}
		exprs = append(exprs, e)
	}
	for _, c := range l.cols {
		defs = append(defs, ident(c.Name)+" "+c.Type)
		names = append(names, ident(c.Name))
		sel = append(sel, "s."+ident(c.Name))
		load(c.Type, c.conv)
	}
	boolConv := converter{wire: wireBool}
	bigintConv := converter{wire: wireBigint}
	defs = append(defs, ident(delCol)+" BOOLEAN NOT NULL", ident(lsnCol)+" BIGINT NOT NULL", ident(seqCol)+" BIGINT NOT NULL",
		ident(fbFlagCol)+" BOOLEAN NOT NULL", ident(colvCol)+" "+colvType, ident(floorLSNCol)+" BIGINT", ident(floorSeqCol)+" BIGINT")
	load("BOOLEAN", boolConv)
	load("BIGINT", bigintConv)
	load("BIGINT", bigintConv)
	load("BOOLEAN", boolConv)
	// The column versions travel as JSON text.
	wire++
	exprs = append(exprs, "CAST(CAST("+ident(loadAlias, loadColPrefix+strconv.Itoa(wire))+" AS JSON) AS "+colvType+")")
	load("BIGINT", bigintConv)
	load("BIGINT", bigintConv)
	for i, k := range l.keys {
		defs = append(defs, ident(fbCol(i))+" "+l.cols[k].Type)
		load(l.cols[k].Type, l.cols[k].conv)
	}
	for _, p := range l.keeps {
		defs = append(defs, ident(keepCol(p))+" BOOLEAN NOT NULL")
		load("BOOLEAN", boolConv)
	}
	s.createStage = "CREATE TEMPORARY TABLE " + st + " (" + strings.Join(defs, ", ") + ")"
	// Each batch replaces the staging table instead of deleting its rows:
	// DuckDB keeps deleted rows' storage in a temporary table until the
	// connection closes (a checkpoint never runs on it), so with DELETE
	// the stage held every row staged since the file was opened (64 MB
	// after 200k rows; rosetta dev's peak RSS 30 MB higher).
	s.clearStage = "CREATE OR REPLACE TEMPORARY TABLE " + st + " (" + strings.Join(defs, ", ") + ")"
	s.loadPrefix = "INSERT INTO " + st + " SELECT " + strings.Join(exprs, ", ") + " FROM "
	s.load = s.loadPrefix + ident(loadAlias)

	if len(l.keeps) > 0 {
		var fill []string
		for _, p := range l.keeps {
			c := ident(l.cols[p].Name)
			fill = append(fill, c+" = CASE WHEN s."+ident(keepCol(p))+" THEN t."+c+" ELSE s."+c+" END", ident(keepCol(p))+" = false")
		}
		s.fill = "UPDATE " + st + " AS s SET " + strings.Join(fill, ", ") + " FROM " + target + " AS t WHERE s." + ident(fbFlagCol) +
			" AND " + match("t", "s", true)
	}

	s.truncateRows = "DELETE FROM " + target + " AS t WHERE " + version("t") + " < " + param12
	s.truncateMark = "UPDATE " + ident(bookkeepingSchema, registryTable) + " AS w SET truncate_lsn = CAST($1 AS BIGINT), truncate_seq = CAST($2 AS BIGINT)" +
		" WHERE w.schema_name = $3 AND w.table_name = $4 AND (w.truncate_lsn, w.truncate_seq) < " + param12
	s.truncateTombs = "DELETE FROM " + tomb + " AS x WHERE " + version("x") + " < " + param12

	s.deleteRows = "DELETE FROM " + target + " AS t USING " + st + " AS s WHERE " + hasFloor +
		" AND " + match("t", "s", false) + " AND " + version("t") + " < " + floor
	if len(data) > 0 {
		s.invalidateRows = "UPDATE " + target + " AS t SET " + invalidateSet(data, "[s."+ident(floorLSNCol)+", s."+ident(floorSeqCol)+"]") +
			" FROM " + st + " AS s WHERE " + hasFloor + " AND " + match("t", "s", false) + " AND t." + ident(colvCol) + " IS NOT NULL AND " +
			version("t") + " > " + floor
	}
	// A floor needs a tombstone while its key has no row, or a row with
	// unknown columns.
	needTomb := hasFloor + " AND " + aboveWatermark(floor) +
		" AND NOT EXISTS (SELECT 1 FROM " + target + " AS t WHERE " + match("t", "s", false) + " AND NOT " + hasUnknown("t") + ")"
	var keyNames, keySel []string
	for _, k := range l.keys {
		keyNames = append(keyNames, ident(l.cols[k].Name))
		keySel = append(keySel, "s."+ident(l.cols[k].Name))
	}
	s.tombUpdate = "UPDATE " + tomb + " AS x SET " + ident(lsnCol) + " = s." + ident(floorLSNCol) + ", " + ident(seqCol) + " = s." + ident(floorSeqCol) +
		" FROM " + st + " AS s WHERE " + needTomb + " AND " + match("x", "s", false) + " AND " + version("x") + " < " + floor
	s.tombInsert = "INSERT INTO " + tomb + " (" + strings.Join(keyNames, ", ") + ", " + ident(lsnCol) + ", " + ident(seqCol) + ")" +
		" SELECT " + strings.Join(keySel, ", ") + ", s." + ident(floorLSNCol) + ", s." + ident(floorSeqCol) + " FROM " + st + " AS s" +
		" WHERE " + needTomb + " AND NOT EXISTS (SELECT 1 FROM " + tomb + " AS x WHERE " + match("x", "s", false) + ")"

	// fast: a full change newer than the stored row, the common case,
	// overwrites every column; anything else merges per column.
	fast := "s." + ident(colvCol) + " IS NULL AND " + version("t") + " < " + version("s")
	newer := version("t") + " < " + version("s")
	var set []string
	for _, c := range data {
		set = append(set, ident(c.Name)+" = CASE WHEN "+fast+" THEN s."+ident(c.Name)+" WHEN "+colVersion("t", c.Name)+" < "+
			colVersion("s", c.Name)+" THEN s."+ident(c.Name)+" ELSE t."+ident(c.Name)+" END")
	}
	set = append(set, ident(colvCol)+" = CASE WHEN "+fast+" THEN NULL ELSE "+mergedColVersions(data)+" END",
		ident(lsnCol)+" = CASE WHEN "+newer+" THEN s."+ident(lsnCol)+" ELSE t."+ident(lsnCol)+" END",
		ident(seqCol)+" = CASE WHEN "+newer+" THEN s."+ident(seqCol)+" ELSE t."+ident(seqCol)+" END")
	s.update = "UPDATE " + target + " AS t SET " + strings.Join(set, ", ") + " FROM " + st + " AS s" +
		" WHERE NOT s." + ident(delCol) + " AND " + match("t", "s", false) + " AND (" + newer +
		// A late older change (or the same version again, carrying
		// older columns) may still fill columns of a row with column
		// versions, unless a delete or truncate newer than it is known.
		" OR t." + ident(colvCol) + " IS NOT NULL AND " + version("t") + " >= " + version("s") + " AND " + aboveFloors(version("s")) +
		" AND NOT EXISTS (SELECT 1 FROM " + tomb + " AS x WHERE " + match("x", "s", false) + " AND " + version("x") + " > " + version("s") + "))"
	s.insert = "INSERT INTO " + target + " (" + strings.Join(names, ", ") + ", " + ident(lsnCol) + ", " + ident(seqCol) + ", " + ident(colvCol) + ")" +
		" SELECT " + strings.Join(sel, ", ") + ", s." + ident(lsnCol) + ", s." + ident(seqCol) + ", s." + ident(colvCol) + " FROM " + st + " AS s" +
		" WHERE NOT s." + ident(delCol) + " AND NOT EXISTS (SELECT 1 FROM " + target + " AS t WHERE " + match("t", "s", false) + ")" +
		" AND NOT EXISTS (SELECT 1 FROM " + tomb + " AS x WHERE " + match("x", "s", false) + " AND " + version("x") + " >= " + version("s") + ")" +
		" AND " + aboveFloors(version("s"))
	s.untomb = "DELETE FROM " + tomb + " AS x USING " + st + " AS s WHERE NOT s." + ident(delCol) +
		" AND " + match("x", "s", false) + " AND " + version("x") + " < " + version("s") +
		" AND EXISTS (SELECT 1 FROM " + target + " AS t WHERE " + match("t", "s", false) + " AND NOT " + hasUnknown("t") + ")"
	return s
}

// DDL of the bookkeeping schema.
var bookkeepingDDL = []string{
	"CREATE SCHEMA IF NOT EXISTS " + ident(bookkeepingSchema),
	"CREATE TABLE IF NOT EXISTS " + ident(bookkeepingSchema, registryTable) + ` (
	schema_name VARCHAR NOT NULL,
	table_name VARCHAR NOT NULL,
	tombstone_table VARCHAR NOT NULL UNIQUE,
	truncate_lsn BIGINT NOT NULL DEFAULT 0,
	truncate_seq BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (schema_name, table_name))`,
	// The collect floor (collect.go); added to registries created before
	// (DuckDB adds no column with a constraint: NULL reads as 0).
	"ALTER TABLE " + ident(bookkeepingSchema, registryTable) + " ADD COLUMN IF NOT EXISTS collect_lsn BIGINT DEFAULT 0",
	"ALTER TABLE " + ident(bookkeepingSchema, registryTable) + " ADD COLUMN IF NOT EXISTS collect_seq BIGINT DEFAULT 0",
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
	defs = append(defs, ident(lsnCol)+" BIGINT NOT NULL", ident(seqCol)+" BIGINT NOT NULL", ident(colvCol)+" "+colvType)
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
	defs = append(defs, ident(lsnCol)+" BIGINT NOT NULL", ident(seqCol)+" BIGINT NOT NULL",
		"PRIMARY KEY ("+strings.Join(names, ", ")+")")
	return "CREATE TABLE IF NOT EXISTS " + tomb + " (" + strings.Join(defs, ", ") + ")"
}

func addColumnSQL(target string, c stageColumn) string {
	return "ALTER TABLE " + target + " ADD COLUMN IF NOT EXISTS " + ident(c.Name) + " " + c.Type
}

// addVersionSQL adopts a table that exists without version columns: its
// rows count as older than any change. (DuckDB cannot add a NOT NULL
// column; the default fills every existing row.)
func addVersionSQL(target, col string) string {
	return "ALTER TABLE " + target + " ADD COLUMN IF NOT EXISTS " + ident(col) + " BIGINT DEFAULT 0"
}
