package duckdb

import (
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// Staging-only names of DuckDB's load and fill of moved rows (relational
// holds the names the drivers share).
const (
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

// statements is the SQL of one batch shape: the staging table, its load
// and fill, and the version guard's steps (relational.Guarded, in
// DuckDB's syntax). Values are bound ($1, $2 …) or appended, never
// spliced in.
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
	// The guard's steps (tombstones: the UPDATE and INSERT form).
	relational.Guarded
}

// column is c as the shared statements see it.
func (c stageColumn) column() relational.Column {
	return relational.Column{Name: c.Name, Type: c.Type, Key: c.Key}
}

// syntax is DuckDB's spelling of the shared statements.
func syntax() relational.Syntax {
	registry := ident(relational.BookkeepingSchema, relational.RegistryTable)
	bound := [2]string{"CAST($1 AS BIGINT)", "CAST($2 AS BIGINT)"}
	return relational.Syntax{
		Ident: ident, Text: "VARCHAR", Bigint: "BIGINT", ColvType: colvType,
		// DuckDB cannot add a NOT NULL column; the default fills every
		// existing row.
		AdoptVersion: "BIGINT DEFAULT 0",
		Bound:        bound, Typed: bound,
		Pair:    func(lsn, seq string) string { return "[" + lsn + ", " + seq + "]" },
		Unknown: unknownVersion, Colv: true, ColVersion: colVersion, HasUnknown: hasUnknown, Sparse: sparseMap,
		AboveWatermark: func(v string) string {
			return "NOT EXISTS (SELECT 1 FROM " + registry + " AS w WHERE w.schema_name = $1 AND w.table_name = $2" +
				" AND (w.truncate_lsn, w.truncate_seq) >= " + v + ")"
		},
		// A registry from before the collect floor holds NULL there.
		AboveFloors: func(v string) string {
			return "NOT EXISTS (SELECT 1 FROM " + registry + " AS w WHERE w.schema_name = $1 AND w.table_name = $2" +
				" AND ((w.truncate_lsn, w.truncate_seq) >= " + v + " OR (COALESCE(w.collect_lsn, 0), COALESCE(w.collect_seq, 0)) > " + v + "))"
		},
		ColumnType: columnType, Widens: widens,
	}
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
	var s statements
	var defs, exprs []string
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
		load(c.Type, c.conv)
	}
	boolConv := converter{wire: wireBool}
	bigintConv := converter{wire: wireBigint}
	defs = append(defs, ident(relational.DelCol)+" BOOLEAN NOT NULL", ident(relational.LSNCol)+" BIGINT NOT NULL", ident(relational.SeqCol)+" BIGINT NOT NULL",
		ident(fbFlagCol)+" BOOLEAN NOT NULL", ident(relational.ColvCol)+" "+colvType, ident(relational.FloorLSNCol)+" BIGINT", ident(relational.FloorSeqCol)+" BIGINT")
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
		var fill, fallback []string
		for _, p := range l.keeps {
			c := ident(l.cols[p].Name)
			fill = append(fill, c+" = CASE WHEN s."+ident(keepCol(p))+" THEN t."+c+" ELSE s."+c+" END", ident(keepCol(p))+" = false")
		}
		for i, k := range l.keys {
			fallback = append(fallback, "t."+ident(l.cols[k].Name)+" = s."+ident(fbCol(i)))
		}
		s.fill = "UPDATE " + st + " AS s SET " + strings.Join(fill, ", ") + " FROM " + target + " AS t WHERE s." + ident(fbFlagCol) +
			" AND " + strings.Join(fallback, " AND ")
	}

	s.Guarded = syntax().Guarded(target, tomb, stage, relational.Columns(l.cols, stageColumn.column))
	return s
}

// bookkeepingDDL creates the bookkeeping schema and registry, and adds the
// collect floor (collect.go) to a registry created before it (DuckDB adds
// no column with a constraint: NULL reads as 0).
func bookkeepingDDL() []string {
	x := syntax()
	return append(x.BookkeepingDDL(), x.CollectFloorDDL()...)
}
