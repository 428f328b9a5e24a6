package relational

import "strings"

// Names Rosetta reserves in a destination of the SQL drivers. Source
// columns may not start with ReservedPrefix: the version columns and the
// staging tables' bookkeeping columns use it.
const (
	BookkeepingSchema = "_rosetta"
	RegistryTable     = "tables"
	ReservedPrefix    = "_rosetta_"
	LSNCol            = "_rosetta_lsn"
	SeqCol            = "_rosetta_seq"
	// ColvCol is the sparse record of column versions: for each column
	// whose value is older than the row's version, [lsn, seq] of the
	// change it came from, [0, -1] when unknown; NULL (the common case)
	// when every column has the row's version (package guard). In
	// staging, the versions of the staged values, on the same terms. Its
	// type is the Syntax's ColvType.
	ColvCol = "_rosetta_colv"
	// Staging-only columns.
	DelCol      = "_rosetta_del"  // the key's final state is deleted
	FloorLSNCol = "_rosetta_flsn" // the floor: a delete's own version, or the delete before an upsert
	FloorSeqCol = "_rosetta_fseq"
)

// Column is a column of a destination or staging table as the shared
// statements see it.
type Column struct {
	Name string
	Type string // as the destination's catalog prints it
	Key  bool
}

// Columns converts a driver's columns with col (once per table shape).
func Columns[C any](cs []C, col func(C) Column) []Column {
	out := make([]Column, len(cs))
	for i, c := range cs {
		out[i] = col(c)
	}
	return out
}

// Syntax is how one destination spells the statements the SQL drivers
// share: quoting, type names, how a bound version is written and the
// column-version record's expressions. What the statements do, the version
// guard's rule (package guard) in set-based SQL, is this package's; a
// driver adds only what its destination needs beyond them (staging, the
// load, exactness checks). SQL is generated once per table shape, never
// per row.
type Syntax struct {
	// Ident quotes a (possibly qualified) identifier. Every identifier in
	// generated SQL goes through it.
	Ident func(parts ...string) string
	// Text and Bigint are the type names of the registry's and the
	// version columns; ColvType the type of ColvCol.
	Text, Bigint, ColvType string
	// AdoptVersion defines a version column added to an existing table
	// (or registry): its rows count as older than any change.
	AdoptVersion string
	// Bound is the truncate version, bound as $1 and $2, as statements
	// compare it; Typed the same as values of their own (in a Pair).
	Bound, Typed [2]string
	// Pair builds a version value, [lsn, seq], from two expressions;
	// Unknown is the version of a column no change has provided.
	Pair    func(lsn, seq string) string
	Unknown string
	// Colv: the table has ColvCol. Without it (a PostgreSQL table the
	// sink's role cannot alter) every column has the row's version: no
	// late fills, no invalidation.
	Colv bool
	// ColVersion is the version of column name in the row aliased a;
	// HasUnknown is true when the stored row aliased a has a column no
	// change provided.
	ColVersion func(a, name string) string
	HasUnknown func(a string) string
	// Sparse builds the record from per-column version expressions:
	// entries equal to rowVersion left out, entries of base for columns
	// not in data kept, an empty record NULL.
	Sparse func(base string, data []Column, version func(name string) string, rowVersion string) string
	// AboveWatermark is true when version v is newer than the table's
	// last truncate; AboveFloors also when v is not older than its
	// collect floor (a change older than the floor finds no tombstone
	// older than the floor any more, and inserts and fills nothing, as
	// they made it do). Both read the registry with $1 = schema, $2 =
	// table.
	AboveWatermark, AboveFloors func(v string) string
	// TombUpsert: tombstones are recorded with one INSERT … ON CONFLICT
	// … DO UPDATE … WHERE (Guarded.Tombstone); otherwise with an UPDATE
	// of the existing ones and an INSERT of the others (TombUpdate,
	// TombInsert).
	TombUpsert bool
	// ColumnType is the destination type of a source column's base
	// type; Widens reports whether changing a destination column of type
	// dest to sent keeps every value it holds exactly and lets it hold
	// every value of dest.
	ColumnType func(baseType string) string
	Widens     func(dest, sent string) bool
}

// version is the row version of the row aliased a, as a tuple.
func (x Syntax) version(a string) string {
	return "(" + a + "." + x.Ident(LSNCol) + ", " + a + "." + x.Ident(SeqCol) + ")"
}

// Guarded is the SQL of the version guard's steps for one staged shape.
// Values are bound, never spliced in.
type Guarded struct {
	// Truncate* take $1 = truncate LSN, $2 = seq; TruncateMark also
	// $3 = schema, $4 = table.
	TruncateRows, TruncateMark, TruncateTombs string
	// DeleteRows removes rows older than a staged floor (a delete, or the
	// delete an upsert followed in its batch); InvalidateRows turns
	// columns of newer rows older than the floor into unknown ("" without
	// data columns or column versions).
	DeleteRows, InvalidateRows string
	// Tombstone (TombUpsert), or TombUpdate and TombInsert, record floors
	// whose key has no row, or one with unknown columns, left ($1 =
	// schema, $2 = table for the truncate watermark).
	Tombstone, TombUpdate, TombInsert string
	// Update merges staged upserts into stored rows per column; Insert
	// adds the rest (both $1 = schema, $2 = table for the truncate
	// watermark; Update only with column versions); Untomb drops
	// tombstones older than a staged upsert whose row now has every
	// column known.
	Update, Insert, Untomb string
}

// Guarded generates the guard's statements for one shape: target and tomb
// are the quoted destination and tombstone tables, stage the staging
// table's name, cols its data columns (key columns flagged, in key order).
func (x Syntax) Guarded(target, tomb, stage string, cols []Column) Guarded {
	var keys, data []Column
	for _, c := range cols {
		if c.Key {
			keys = append(keys, c)
		} else {
			data = append(data, c)
		}
	}
	id := x.Ident
	match := func(l, r string) string {
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = l + "." + id(k.Name) + " = " + r + "." + id(k.Name)
		}
		return strings.Join(parts, " AND ")
	}
	version := x.version
	st := id(stage)
	bound := "(" + x.Bound[0] + ", " + x.Bound[1] + ")"
	floor := "(s." + id(FloorLSNCol) + ", s." + id(FloorSeqCol) + ")"
	hasFloor := "s." + id(FloorLSNCol) + " IS NOT NULL"
	var g Guarded

	g.TruncateRows = "DELETE FROM " + target + " AS t WHERE " + version("t") + " < " + bound
	g.TruncateMark = "UPDATE " + id(BookkeepingSchema, RegistryTable) + " AS w SET truncate_lsn = " + x.Bound[0] + ", truncate_seq = " + x.Bound[1] +
		" WHERE w.schema_name = $3 AND w.table_name = $4 AND (w.truncate_lsn, w.truncate_seq) < " + bound
	g.TruncateTombs = "DELETE FROM " + tomb + " AS x WHERE " + version("x") + " < " + bound

	g.DeleteRows = "DELETE FROM " + target + " AS t USING " + st + " AS s WHERE " + hasFloor +
		" AND " + match("t", "s") + " AND " + version("t") + " < " + floor
	if len(data) > 0 && x.Colv {
		g.InvalidateRows = "UPDATE " + target + " AS t SET " + x.InvalidateSet(data, x.Pair("s."+id(FloorLSNCol), "s."+id(FloorSeqCol))) +
			" FROM " + st + " AS s WHERE " + hasFloor + " AND " + match("t", "s") + " AND t." + id(ColvCol) + " IS NOT NULL AND " +
			version("t") + " > " + floor
	}
	// A floor needs a tombstone while its key has no row, or a row with
	// unknown columns.
	needTomb := hasFloor + " AND " + x.AboveWatermark(floor) +
		" AND NOT EXISTS (SELECT 1 FROM " + target + " AS t WHERE " + match("t", "s") + " AND NOT " + x.HasUnknown("t") + ")"
	var keyNames, keySel []string
	for _, k := range keys {
		keyNames = append(keyNames, id(k.Name))
		keySel = append(keySel, "s."+id(k.Name))
	}
	tombCols := " (" + strings.Join(keyNames, ", ") + ", " + id(LSNCol) + ", " + id(SeqCol) + ")" +
		" SELECT " + strings.Join(keySel, ", ") + ", s." + id(FloorLSNCol) + ", s." + id(FloorSeqCol) + " FROM " + st + " AS s WHERE " + needTomb
	if x.TombUpsert {
		g.Tombstone = "INSERT INTO " + tomb + " AS x" + tombCols +
			" ON CONFLICT (" + strings.Join(keyNames, ", ") + ") DO UPDATE SET " + id(LSNCol) + " = EXCLUDED." + id(LSNCol) +
			", " + id(SeqCol) + " = EXCLUDED." + id(SeqCol) + " WHERE " + version("x") + " < " + version("EXCLUDED")
	} else {
		g.TombUpdate = "UPDATE " + tomb + " AS x SET " + id(LSNCol) + " = s." + id(FloorLSNCol) + ", " + id(SeqCol) + " = s." + id(FloorSeqCol) +
			" FROM " + st + " AS s WHERE " + needTomb + " AND " + match("x", "s") + " AND " + version("x") + " < " + floor
		g.TombInsert = "INSERT INTO " + tomb + tombCols + " AND NOT EXISTS (SELECT 1 FROM " + tomb + " AS x WHERE " + match("x", "s") + ")"
	}

	// fast: a full change newer than the stored row, the common case,
	// overwrites every column; anything else merges per column.
	fast := "s." + id(ColvCol) + " IS NULL AND " + version("t") + " < " + version("s")
	newer := version("t") + " < " + version("s")
	set := make([]string, 0, len(data)+3)
	for _, c := range data {
		set = append(set, id(c.Name)+" = CASE WHEN "+fast+" THEN s."+id(c.Name)+" WHEN "+x.ColVersion("t", c.Name)+" < "+
			x.ColVersion("s", c.Name)+" THEN s."+id(c.Name)+" ELSE t."+id(c.Name)+" END")
	}
	if x.Colv {
		set = append(set, id(ColvCol)+" = CASE WHEN "+fast+" THEN NULL ELSE "+x.MergedColVersions(data)+" END")
	}
	set = append(set, id(LSNCol)+" = CASE WHEN "+newer+" THEN s."+id(LSNCol)+" ELSE t."+id(LSNCol)+" END",
		id(SeqCol)+" = CASE WHEN "+newer+" THEN s."+id(SeqCol)+" ELSE t."+id(SeqCol)+" END")
	late := ""
	if x.Colv {
		// A late older change (or the same version again, carrying
		// older columns) may still fill columns of a row with column
		// versions, unless a delete or truncate newer than it is known.
		late = " OR t." + id(ColvCol) + " IS NOT NULL AND " + version("t") + " >= " + version("s") + " AND " + x.AboveFloors(version("s")) +
			" AND NOT EXISTS (SELECT 1 FROM " + tomb + " AS x WHERE " + match("x", "s") + " AND " + version("x") + " > " + version("s") + ")"
	}
	g.Update = "UPDATE " + target + " AS t SET " + strings.Join(set, ", ") + " FROM " + st + " AS s" +
		" WHERE NOT s." + id(DelCol) + " AND " + match("t", "s") + " AND (" + newer + late + ")"

	var names, sel []string
	for _, c := range cols {
		names = append(names, id(c.Name))
		sel = append(sel, "s."+id(c.Name))
	}
	insCols, insSel := id(LSNCol)+", "+id(SeqCol), "s."+id(LSNCol)+", s."+id(SeqCol)
	if x.Colv {
		insCols, insSel = insCols+", "+id(ColvCol), insSel+", s."+id(ColvCol)
	}
	g.Insert = "INSERT INTO " + target + " (" + strings.Join(names, ", ") + ", " + insCols + ")" +
		" SELECT " + strings.Join(sel, ", ") + ", " + insSel + " FROM " + st + " AS s" +
		" WHERE NOT s." + id(DelCol) +
		" AND NOT EXISTS (SELECT 1 FROM " + target + " AS t WHERE " + match("t", "s") + ")" +
		" AND NOT EXISTS (SELECT 1 FROM " + tomb + " AS x WHERE " + match("x", "s") + " AND " + version("x") + " >= " + version("s") + ")" +
		" AND " + x.AboveFloors(version("s"))
	g.Untomb = "DELETE FROM " + tomb + " AS x USING " + st + " AS s WHERE NOT s." + id(DelCol) +
		" AND " + match("x", "s") + " AND " + version("x") + " < " + version("s") +
		" AND EXISTS (SELECT 1 FROM " + target + " AS t WHERE " + match("t", "s") + " AND NOT " + x.HasUnknown("t") + ")"
	return g
}

// TruncateInvalidate is the statement that turns columns older than a
// truncate ($1, $2) into unknown in every newer row, from the destination
// table's columns (types) less its key columns (keys); "" when there are
// none, or no column versions.
func (x Syntax) TruncateInvalidate(target string, types map[string]string, keys []string) string {
	isKey := map[string]bool{}
	for _, k := range keys {
		isKey[k] = true
	}
	var data []Column
	for name, typ := range types {
		if isKey[name] || name == LSNCol || name == SeqCol || name == ColvCol {
			continue
		}
		data = append(data, Column{Name: name, Type: typ})
	}
	if len(data) == 0 || !x.Colv {
		return ""
	}
	return "UPDATE " + target + " AS t SET " + x.InvalidateSet(data, x.Pair(x.Typed[0], x.Typed[1])) +
		" WHERE t." + x.Ident(ColvCol) + " IS NOT NULL AND " + x.version("t") + " > (" + x.Bound[0] + ", " + x.Bound[1] + ")"
}
