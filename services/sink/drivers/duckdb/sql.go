package duckdb

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"
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
	// Staging-only columns.
	delCol        = "_rosetta_del"   // the key's final state is deleted
	fbFlagCol     = "_rosetta_fb"    // fill kept columns from the fallback key
	fbColPrefix   = "_rosetta_fb_"   // _rosetta_fb_1..n: the fallback key, in key order
	keepColPrefix = "_rosetta_keep_" // _rosetta_keep_<pos>: keep the stored value of column <pos>
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
// inside _rosetta: a readable prefix of the table name plus a hash of the
// schema-qualified name, so two destination tables never share one.
func tombstoneTableName(schema, table string) string {
	sum := sha256.Sum256([]byte(schema + "\x00" + table))
	prefix := table
	for len(prefix) > 40 {
		_, size := utf8.DecodeLastRuneInString(prefix)
		prefix = prefix[:len(prefix)-size]
	}
	return "tomb_" + prefix + "_" + hex.EncodeToString(sum[:6])
}

// stageColumn is one data column of a staging table.
type stageColumn struct {
	Name string
	Type string // the destination column's type, as DuckDB's catalog prints it
	Key  bool
	// Keep is set when some row of the batch lists the column as
	// unchanged: the stage then has a flag column saying, per row,
	// whether to keep the stored value.
	Keep bool
	conv converter
}

// statements is the SQL of one batch shape: the staging table and every
// statement Apply runs against it. Values are bound ($1, $2 …) or
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
	// fill sets kept columns of rows whose key changed from the row
	// stored at their fallback key.
	fill string
	// truncate* take $1 = truncate LSN, $2 = seq; truncateMark also
	// $3 = schema, $4 = table.
	truncateRows, truncateMark, truncateTombs string
	// deleteRows removes rows older than a staged delete; tombUpdate and
	// tombInsert record staged deletes whose key has no row left.
	deleteRows, tombUpdate, tombInsert string
	// update rewrites existing older rows; insert adds the rest ($1 =
	// schema, $2 = table for the truncate watermark); untomb drops
	// tombstones older than a staged upsert.
	update, insert, untomb string
}

// stageLayout is the column order of a staging table (and of the rows the
// loader appends): the data columns (cols), then delete flag, version,
// fallback flag, fallback key in key order, and the keep flags of the
// columns with Keep, in column order.
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

// width is the number of staging columns.
func (l stageLayout) width() int { return len(l.cols) + 4 + len(l.keys) + len(l.keeps) }

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
	keeps := map[int]bool{}
	for _, p := range l.keeps {
		keeps[p] = true
	}

	var s statements
	var defs, names, sel, exprs, set []string
	wire := 0
	load := func(typ string, conv converter) {
		wire++
		e := ident(loadAlias, loadColPrefix+strconv.Itoa(wire))
		if w := wireName(conv.wire); w != typ {
			e = "CAST(" + e + " AS " + typ + ")"
		}
		exprs = append(exprs, e)
	}
	for i, c := range l.cols {
		defs = append(defs, ident(c.Name)+" "+c.Type)
		names = append(names, ident(c.Name))
		sel = append(sel, "s."+ident(c.Name))
		load(c.Type, c.conv)
		switch {
		case c.Key:
		case keeps[i]:
			set = append(set, ident(c.Name)+" = CASE WHEN s."+ident(keepCol(i))+" THEN t."+ident(c.Name)+" ELSE s."+ident(c.Name)+" END")
		default:
			set = append(set, ident(c.Name)+" = s."+ident(c.Name))
		}
	}
	boolConv := converter{wire: wireBool}
	bigintConv := converter{wire: wireBigint}
	defs = append(defs, ident(delCol)+" BOOLEAN NOT NULL", ident(lsnCol)+" BIGINT NOT NULL", ident(seqCol)+" BIGINT NOT NULL",
		ident(fbFlagCol)+" BOOLEAN NOT NULL")
	load("BOOLEAN", boolConv)
	load("BIGINT", bigintConv)
	load("BIGINT", bigintConv)
	load("BOOLEAN", boolConv)
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

	noRow := "NOT EXISTS (SELECT 1 FROM " + target + " AS t WHERE " + match("t", "s", false) + ")"
	s.deleteRows = "DELETE FROM " + target + " AS t USING " + st + " AS s WHERE s." + ident(delCol) +
		" AND " + match("t", "s", false) + " AND " + version("t") + " < " + version("s")
	var keyNames, keySel []string
	for _, k := range l.keys {
		keyNames = append(keyNames, ident(l.cols[k].Name))
		keySel = append(keySel, "s."+ident(l.cols[k].Name))
	}
	s.tombUpdate = "UPDATE " + tomb + " AS x SET " + ident(lsnCol) + " = s." + ident(lsnCol) + ", " + ident(seqCol) + " = s." + ident(seqCol) +
		" FROM " + st + " AS s WHERE s." + ident(delCol) + " AND " + match("x", "s", false) + " AND " + version("x") + " < " + version("s") +
		" AND " + noRow
	s.tombInsert = "INSERT INTO " + tomb + " (" + strings.Join(keyNames, ", ") + ", " + ident(lsnCol) + ", " + ident(seqCol) + ")" +
		" SELECT " + strings.Join(keySel, ", ") + ", s." + ident(lsnCol) + ", s." + ident(seqCol) + " FROM " + st + " AS s" +
		" WHERE s." + ident(delCol) + " AND " + noRow +
		" AND NOT EXISTS (SELECT 1 FROM " + tomb + " AS x WHERE " + match("x", "s", false) + ")"

	set = append(set, ident(lsnCol)+" = s."+ident(lsnCol), ident(seqCol)+" = s."+ident(seqCol))
	s.update = "UPDATE " + target + " AS t SET " + strings.Join(set, ", ") + " FROM " + st + " AS s" +
		" WHERE NOT s." + ident(delCol) + " AND " + match("t", "s", false) + " AND " + version("t") + " < " + version("s")
	s.insert = "INSERT INTO " + target + " (" + strings.Join(names, ", ") + ", " + ident(lsnCol) + ", " + ident(seqCol) + ")" +
		" SELECT " + strings.Join(sel, ", ") + ", s." + ident(lsnCol) + ", s." + ident(seqCol) + " FROM " + st + " AS s" +
		" WHERE NOT s." + ident(delCol) + " AND " + noRow +
		" AND NOT EXISTS (SELECT 1 FROM " + tomb + " AS x WHERE " + match("x", "s", false) + " AND " + version("x") + " >= " + version("s") + ")" +
		" AND NOT EXISTS (SELECT 1 FROM " + ident(bookkeepingSchema, registryTable) + " AS w WHERE w.schema_name = $1 AND w.table_name = $2" +
		" AND (w.truncate_lsn, w.truncate_seq) >= " + version("s") + ")"
	s.untomb = "DELETE FROM " + tomb + " AS x USING " + st + " AS s WHERE NOT s." + ident(delCol) +
		" AND " + match("x", "s", false) + " AND " + version("x") + " < " + version("s")
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
	defs = append(defs, ident(lsnCol)+" BIGINT NOT NULL", ident(seqCol)+" BIGINT NOT NULL")
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
