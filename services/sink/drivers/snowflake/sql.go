package snowflake

import (
	"slices"
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/pkg/colmark"
)

// versionType holds a commit LSN (an unsigned 64-bit integer) or a position
// in a transaction.
const versionType = "NUMBER(20,0)"

// objects names, quoted and qualified, what one destination table uses.
type objects struct {
	target   string // the destination table
	tomb     string // its tombstone table
	stage    string // the session's staging table for one batch shape
	stageAt  string // the staging table's table stage: @db.schema.%stage
	registry string // the schema's _ROSETTA_TABLES
}

func newObjects(db, schema, table, stageName string) objects {
	return objects{
		target:   qualified(db, schema, table),
		tomb:     qualified(db, schema, tombPrefix+table),
		stage:    qualified(db, schema, stageName),
		stageAt:  "@" + ident(db) + "." + ident(schema) + ".%" + ident(stageName),
		registry: qualified(db, schema, registryTable),
	}
}

// newer is the version order: (aL, aS) is newer than (bL, bS).
func newer(aL, aS, bL, bS string) string {
	return "(" + aL + " > " + bL + " OR (" + aL + " = " + bL + " AND " + aS + " > " + bS + "))"
}

// col is alias.column, quoted.
func col(alias, name string) string { return alias + "." + ident(name) }

// createTableSQL creates a destination table. The primary key is
// informational in Snowflake (uniqueness is not enforced) but documents the
// key for users and tools. It is declared only over keys that cannot hold
// NULL: Snowflake does enforce the NOT NULL a primary key implies, and a
// source table without a primary key under REPLICA IDENTITY FULL (the only
// way every column of a change is a key) may hold NULL in any of them.
func createTableSQL(target string, cols []stageColumn, soft bool) string {
	var defs, keys []string
	for _, c := range cols {
		defs = append(defs, ident(c.name)+" "+c.typ.sql())
		if c.key {
			keys = append(keys, ident(c.name))
		}
	}
	defs = append(defs, ident(lsnCol)+" "+versionType+" NOT NULL", ident(seqCol)+" "+versionType+" NOT NULL", ident(colvCol)+" OBJECT")
	if soft {
		defs = append(defs, ident(deletedCol)+" BOOLEAN DEFAULT FALSE NOT NULL")
	}
	if len(keys) > 0 && !keysNullable(cols) {
		defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	}
	return "CREATE TABLE IF NOT EXISTS " + target + " (" + strings.Join(defs, ", ") + ")"
}

func addColumnSQL(target string, c stageColumn) string {
	return "ALTER TABLE " + target + " ADD COLUMN IF NOT EXISTS " + ident(c.name) + " " + c.typ.sql()
}

// addBookkeepingColumnSQL adopts a table that exists without one of
// Rosetta's columns: existing rows count as older than any change (version
// 0), as not deleted, and as holding every column at the row's version.
func addBookkeepingColumnSQL(target, name string) string {
	typ := versionType + " DEFAULT 0"
	switch name {
	case deletedCol:
		typ = "BOOLEAN DEFAULT FALSE"
	case colvCol:
		typ = "OBJECT" // NULL: every column has its row's version
	}
	return "ALTER TABLE " + target + " ADD COLUMN IF NOT EXISTS " + ident(name) + " " + typ
}

// columnCommentsSQL reads the columns' comments of one table of the
// database (binds schema, table). Snowflake keeps a comment across RENAME
// COLUMN, so a colmark follows its column.
func columnCommentsSQL(db string) string {
	return "SELECT " + ident("COLUMN_NAME") + ", " + ident("COMMENT") + " FROM " + qualified(db, "INFORMATION_SCHEMA", "COLUMNS") +
		" WHERE " + ident("TABLE_SCHEMA") + " = ? AND " + ident("TABLE_NAME") + " = ?"
}

// alterColumnsSQL changes several columns in one statement, items from
// markItem or widenItem: one DDL round trip whatever their number.
func alterColumnsSQL(target string, items []string) string {
	return "ALTER TABLE " + target + " ALTER " + strings.Join(items, ", ")
}

// markItem sets a column's comment to its colmark.
func markItem(name string, attnum int) string {
	return "COLUMN " + ident(name) + " COMMENT " + stringLiteral(colmark.For(attnum))
}

// widenItem sets a column's type (a longer VARCHAR, a NUMBER of more
// digits: see widenTo).
func widenItem(name string, to colType) string {
	return "COLUMN " + ident(name) + " SET DATA TYPE " + to.sql()
}

func renameColumnSQL(target, from, to string) string {
	return "ALTER TABLE " + target + " RENAME COLUMN " + ident(from) + " TO " + ident(to)
}

func dropColumnSQL(target, name string) string {
	return "ALTER TABLE " + target + " DROP COLUMN " + ident(name)
}

// createTombSQL creates the tombstone table of a target; nullable: the
// keys may hold NULL (keysNullable), so no primary key is declared.
func createTombSQL(tomb string, keys []stageColumn, nullable bool) string {
	var defs, names []string
	for _, k := range keys {
		defs = append(defs, ident(k.name)+" "+k.typ.sql())
		names = append(names, ident(k.name))
	}
	defs = append(defs, ident(lsnCol)+" "+versionType+" NOT NULL", ident(seqCol)+" "+versionType+" NOT NULL")
	if !nullable {
		defs = append(defs, "PRIMARY KEY ("+strings.Join(names, ", ")+")")
	}
	return "CREATE TABLE IF NOT EXISTS " + tomb + " (" + strings.Join(defs, ", ") + ")"
}

// createRegistrySQL creates the schema's registry: per destination table,
// its truncate watermark and its collect floor (collect.go).
func createRegistrySQL(registry string) string {
	return "CREATE TABLE IF NOT EXISTS " + registry + " (" + ident("TABLE_NAME") + " VARCHAR NOT NULL, " +
		ident("TRUNCATE_LSN") + " " + versionType + " NOT NULL, " + ident("TRUNCATE_SEQ") + " " + versionType + " NOT NULL, " +
		ident(collectLSNCol) + " " + versionType + " DEFAULT 0, " + ident(collectSeqCol) + " " + versionType + " DEFAULT 0, " +
		"PRIMARY KEY (" + ident("TABLE_NAME") + "))"
}

// addRegistryColumnSQL gives a registry created before collection one of
// the collect floor's columns: existing tables have floor 0 (nothing
// collected).
func addRegistryColumnSQL(registry, name string) string {
	return "ALTER TABLE " + registry + " ADD COLUMN IF NOT EXISTS " + ident(name) + " " + versionType + " DEFAULT 0"
}

// readRegistrySQL reads every truncate watermark and collect floor of the
// schema; duplicates (two sinks registering one table at once) are
// harmless: the newest of each wins.
func readRegistrySQL(registry string) string {
	return "SELECT " + ident("TABLE_NAME") + ", " + ident("TRUNCATE_LSN") + ", " + ident("TRUNCATE_SEQ") + ", COALESCE(" +
		ident(collectLSNCol) + ", 0), COALESCE(" + ident(collectSeqCol) + ", 0) FROM " + registry
}

// raiseCollectFloorSQL raises a table's collect floor, never lowering it,
// and registers a table the registry does not list yet (watermark 0):
// binds table, lsn, seq.
func raiseCollectFloorSQL(registry string) string {
	rl, rs := "COALESCE("+col("r", collectLSNCol)+", 0)", "COALESCE("+col("r", collectSeqCol)+", 0)"
	return "MERGE INTO " + registry + " AS r USING (SELECT ? AS " + ident("TABLE_NAME") + ", ? AS " + ident(collectLSNCol) +
		", ? AS " + ident(collectSeqCol) + ") AS s ON " + col("r", "TABLE_NAME") + " = " + col("s", "TABLE_NAME") +
		" WHEN MATCHED AND " + newer(col("s", collectLSNCol), col("s", collectSeqCol), rl, rs) +
		" THEN UPDATE SET " + ident(collectLSNCol) + " = " + col("s", collectLSNCol) + ", " + ident(collectSeqCol) + " = " + col("s", collectSeqCol) +
		" WHEN NOT MATCHED THEN INSERT (" + ident("TABLE_NAME") + ", " + ident("TRUNCATE_LSN") + ", " + ident("TRUNCATE_SEQ") + ", " +
		ident(collectLSNCol) + ", " + ident(collectSeqCol) + ") VALUES (" + col("s", "TABLE_NAME") + ", 0, 0, " +
		col("s", collectLSNCol) + ", " + col("s", collectSeqCol) + ")"
}

// readCollectFloorSQL reads a table's collect floor, the newest of its
// registry rows (binds table).
func readCollectFloorSQL(registry string) string {
	return "SELECT COALESCE(" + ident(collectLSNCol) + ", 0) AS L, COALESCE(" + ident(collectSeqCol) + ", 0) AS S FROM " + registry +
		" WHERE " + ident("TABLE_NAME") + " = ? ORDER BY L DESC, S DESC LIMIT 1"
}

// collectCutSQL finds the version of the chunk-th oldest tombstone older
// than the floor (binds lsn, lsn, seq): no row when fewer are left.
func collectCutSQL(tomb string, chunk int) string {
	return "SELECT " + col("x", lsnCol) + ", " + col("x", seqCol) + " FROM " + tomb + " AS x WHERE " + olderThanBound("x") +
		" ORDER BY " + col("x", lsnCol) + ", " + col("x", seqCol) + " LIMIT 1 OFFSET " + strconv.Itoa(chunk-1)
}

// collectUpToSQL deletes the tombstones at or older than a cut (binds lsn,
// lsn, seq): with the cut from collectCutSQL, one chunk.
func collectUpToSQL(tomb string) string {
	return "DELETE FROM " + tomb + " AS x WHERE (" + col("x", lsnCol) + " < ? OR (" + col("x", lsnCol) + " = ? AND " +
		col("x", seqCol) + " <= ?))"
}

// markTruncateSQL raises a table's watermark: binds table, lsn, seq.
func markTruncateSQL(registry string) string {
	return "MERGE INTO " + registry + " AS r USING (SELECT ? AS " + ident("TABLE_NAME") + ", ? AS " + ident("TRUNCATE_LSN") +
		", ? AS " + ident("TRUNCATE_SEQ") + ") AS s ON " + col("r", "TABLE_NAME") + " = " + col("s", "TABLE_NAME") +
		" WHEN MATCHED AND " + newer(col("s", "TRUNCATE_LSN"), col("s", "TRUNCATE_SEQ"), col("r", "TRUNCATE_LSN"), col("r", "TRUNCATE_SEQ")) +
		" THEN UPDATE SET " + ident("TRUNCATE_LSN") + " = " + col("s", "TRUNCATE_LSN") + ", " + ident("TRUNCATE_SEQ") + " = " + col("s", "TRUNCATE_SEQ") +
		" WHEN NOT MATCHED THEN INSERT (" + ident("TABLE_NAME") + ", " + ident("TRUNCATE_LSN") + ", " + ident("TRUNCATE_SEQ") +
		") VALUES (" + col("s", "TABLE_NAME") + ", " + col("s", "TRUNCATE_LSN") + ", " + col("s", "TRUNCATE_SEQ") + ")"
}

// olderThanBound is "the row at alias is older than the bound version":
// binds lsn, lsn, seq.
func olderThanBound(alias string) string {
	return "(" + col(alias, lsnCol) + " < ? OR (" + col(alias, lsnCol) + " = ? AND " + col(alias, seqCol) + " < ?))"
}

// truncateRowsSQL removes rows older than a truncate (binds lsn, lsn, seq).
// With soft delete they are flagged deleted and take the truncate's version
// instead, so that an older change redelivered later cannot revive them.
// (binds lsn, seq, lsn, lsn, seq).
func truncateRowsSQL(target string, soft bool) string {
	if soft {
		return "UPDATE " + target + " AS t SET " + ident(deletedCol) + " = TRUE, " + ident(lsnCol) + " = ?, " + ident(seqCol) +
			" = ? WHERE " + olderThanBound("t")
	}
	return "DELETE FROM " + target + " AS t WHERE " + olderThanBound("t")
}

// truncateTombsSQL drops tombstones the watermark now covers (binds lsn,
// lsn, seq).
func truncateTombsSQL(tomb string) string {
	return "DELETE FROM " + tomb + " AS x WHERE " + olderThanBound("x")
}

// stageColumnNames lists the staging table's columns in file order (see
// writeStageCSV).
func stageColumnNames(s shape) []string {
	var names []string
	for _, c := range s.cols {
		names = append(names, ident(c.name))
	}
	names = append(names, ident(delCol), ident(lsnCol), ident(seqCol), ident(fullCol), ident(floorLSNCol), ident(floorSeqCol),
		ident(fbCol), ident(keepCol))
	for i := range s.keys {
		names = append(names, ident(fbKeyPrefix+strconv.Itoa(i+1)))
	}
	for i, c := range s.cols {
		if c.toast {
			names = append(names, ident(verPrefix+strconv.Itoa(i+1)))
		}
	}
	return names
}

// createStageSQL (re)creates a session's staging table. TEMPORARY: it
// lives and dies with the session, costs no Fail-safe storage, and its
// name never clashes with another session's.
func createStageSQL(stage string, s shape) string {
	var defs []string
	for _, c := range s.cols {
		defs = append(defs, ident(c.name)+" "+c.typ.stageSQL())
	}
	defs = append(defs, ident(delCol)+" BOOLEAN NOT NULL", ident(lsnCol)+" "+versionType+" NOT NULL",
		ident(seqCol)+" "+versionType+" NOT NULL", ident(fullCol)+" BOOLEAN NOT NULL", ident(floorLSNCol)+" "+versionType,
		ident(floorSeqCol)+" "+versionType, ident(fbCol)+" BOOLEAN NOT NULL", ident(keepCol)+" VARCHAR")
	for i, k := range s.keyCols() {
		defs = append(defs, ident(fbKeyPrefix+strconv.Itoa(i+1))+" "+k.typ.stageSQL())
	}
	for i, c := range s.cols {
		if c.toast {
			defs = append(defs, ident(verPrefix+strconv.Itoa(i+1))+" "+keyType)
		}
	}
	return "CREATE OR REPLACE TEMPORARY TABLE " + stage + " (" + strings.Join(defs, ", ") + ")"
}

// putSQL uploads a local file, already gzipped, to the staging table's
// stage, under a directory of its own.
func putSQL(o objects, path, dir string) string {
	return "PUT " + stringLiteral("file://"+path) + " " + o.stageAt + "/" + dir +
		" AUTO_COMPRESS = FALSE SOURCE_COMPRESSION = GZIP OVERWRITE = TRUE"
}

// stringLiteral quotes a Snowflake string literal. It is used only where
// a bind cannot be: the local path in PUT, and the DEFAULT of an added
// column (addColumnDDL).
func stringLiteral(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// csvFormat reads what writeStageCSV writes (see there).
const csvFormat = "FILE_FORMAT = (TYPE = CSV COMPRESSION = GZIP FIELD_DELIMITER = ',' SKIP_HEADER = 0" +
	" FIELD_OPTIONALLY_ENCLOSED_BY = '\"' ESCAPE = NONE ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = ()" +
	" EMPTY_FIELD_AS_NULL = TRUE BINARY_FORMAT = HEX ERROR_ON_COLUMN_COUNT_MISMATCH = TRUE)"

// copySQL loads the batch's file into the staging table, in the form
// Snowflake documents for a column list: a transformation selecting the
// file's columns by position ($1, $2, …). FORCE = TRUE: Snowflake's load
// history must never skip a file (a redelivered batch is new data to this
// table even when identical); PURGE = TRUE removes the file once loaded.
func copySQL(o objects, s shape, dir string) string {
	names := stageColumnNames(s)
	pos := make([]string, len(names))
	for i := range names {
		pos[i] = "$" + strconv.Itoa(i+1)
	}
	return "COPY INTO " + o.stage + " (" + strings.Join(names, ", ") + ") FROM (SELECT " + strings.Join(pos, ", ") +
		" FROM " + o.stageAt + "/" + dir + "/) " + csvFormat + " ON_ERROR = ABORT_STATEMENT PURGE = TRUE FORCE = TRUE"
}

func removeSQL(o objects, dir string) string { return "REMOVE " + o.stageAt + "/" + dir + "/" }

func clearStageSQL(stage string) string { return "DELETE FROM " + stage }

// mergeOptions select the variant of the MERGE.
type mergeOptions struct {
	soft bool
	// clearDeleted: the target has _ROSETTA_DELETED although soft delete is
	// off (it was on before); upserts reset it.
	clearDeleted bool
	// others are the target's data columns the batch does not stage (added
	// by hand, or at the source after the batch's changes): the changes
	// leave them as they are; only a floor turns an entry of theirs older
	// than itself unknown.
	others []string
}

// mergeSQL is the one statement that applies a staged batch to the target
// (binds: the truncate watermark's lsn, lsn, seq three times; soft delete
// twice), implementing the version guard (services/sink/drivers/internal/
// guard) per key:
//
//   - a floor (a staged delete, or the delete before a re-created key)
//     removes a row older than itself (soft delete: flags it); in a newer
//     row with a record it turns the columns older than itself unknown;
//   - a staged upsert newer than the row updates it: a full one (the common
//     path) overwrites every column, a partial one each column whose
//     stored version is older than the staged value's; an older upsert
//     meeting a row with a record fills exactly the columns older than
//     itself, unless a newer tombstone or truncate is known;
//   - a missing row is inserted only if the change is newer than the
//     table's truncate watermark and than the key's tombstone (hard
//     delete), so an older change arriving late does not resurrect it;
//     columns it left unchanged are unknown. With soft delete a staged
//     delete of a missing row inserts a deleted row: it is the tombstone.
func mergeSQL(o objects, s shape, opt mergeOptions) string {
	var b strings.Builder
	sv, fv, tv := col("s", rowKeyCol), col("s", floorKeyCol), rowKey("t")
	b.WriteString("MERGE INTO " + o.target + " AS t USING (SELECT s.*, " + rowKey("s") + " AS " + ident(rowKeyCol) + ", " +
		col("s", floorLSNCol) + " * " + versionScale + " + " + col("s", floorSeqCol) + " + 1 AS " + ident(floorKeyCol))
	for i, c := range s.cols {
		if c.toast {
			b.WriteString(", COALESCE(" + col("s", verPrefix+strconv.Itoa(i+1)) + ", " + rowKey("s") + ") AS " + ident(colKeyPrefix+strconv.Itoa(i+1)))
		}
	}
	if !opt.soft {
		b.WriteString(", " + col("x", lsnCol) + " AS " + ident(tombLSNCol) + ", " + col("x", seqCol) + " AS " + ident(tombSeqCol))
	}
	b.WriteString(" FROM " + o.stage + " AS s")
	if !opt.soft {
		// One source row per staged row, whatever the tombstone table
		// holds: duplicate keys there (rows written by hand, a table shared
		// with another tool) would otherwise multiply it, and Snowflake
		// fails a MERGE whose target row two source rows match (100090).
		// The newest tombstone wins.
		var part []string
		for _, k := range s.keyCols() {
			part = append(part, col("s", k.name))
		}
		b.WriteString(" LEFT JOIN " + o.tomb + " AS x ON " + keyMatch("x", "s", s) + " QUALIFY ROW_NUMBER() OVER (PARTITION BY " +
			strings.Join(part, ", ") + " ORDER BY " + col("x", lsnCol) + " DESC NULLS LAST, " + col("x", seqCol) + " DESC NULLS LAST) = 1")
	}
	b.WriteString(") AS s ON " + keyMatch("t", "s", s))

	isNewer := tv + " < " + sv
	// fast: a full change newer than the stored row, the common path.
	fast := col("s", fullCol) + " AND " + isNewer
	// gone: the stored value of a column is older than the staged floor
	// (soft delete: or the row is a deleted one the change is newer than).
	gone := func(st string) string {
		if opt.soft {
			return "(" + col("t", deletedCol) + " OR " + st + " < " + fv + ")"
		}
		return st + " < " + fv
	}
	var set, insCols, insVals, toastNames, recNames, recEntries, insEntries []string
	for i, c := range s.cols {
		insCols = append(insCols, ident(c.name))
		if c.key {
			insVals = append(insVals, col("s", c.name))
			continue
		}
		staged := col("s", c.name)
		switch c.typ.variant {
		case "VARIANT":
			staged = "PARSE_JSON(" + staged + ")"
		case "OBJECT", "ARRAY":
			staged = "PARSE_JSON(" + staged + ")::" + c.typ.variant
		}
		insVals = append(insVals, staged)
		if !c.toast {
			// Its version is always the row's: newer wins.
			set = append(set, ident(c.name)+" = IFF("+isNewer+", "+staged+", "+col("t", c.name)+")")
			continue
		}
		st := storedKey("t", c.name)
		eff := "IFF(" + gone(st) + ", 0, " + st + ")"
		ski := col("s", colKeyPrefix+strconv.Itoa(i+1))
		set = append(set, ident(c.name)+" = CASE WHEN "+fast+" OR "+eff+" < "+ski+" THEN "+staged+" WHEN "+gone(st)+" THEN NULL ELSE "+
			col("t", c.name)+" END")
		toastNames, recNames = append(toastNames, c.name), append(recNames, c.name)
		recEntries = append(recEntries, "NULLIF(GREATEST("+eff+", "+ski+"), GREATEST("+tv+", "+sv+"))")
		insEntries = append(insEntries, "NULLIF("+ski+", "+sv+")")
	}
	record := col("t", colvCol)
	if len(recNames) > 0 {
		record = recordSQL(recNames, recEntries)
	}
	set = append(set, ident(colvCol)+" = IFF("+fast+", NULL, "+record+")",
		ident(lsnCol)+" = IFF("+isNewer+", "+col("s", lsnCol)+", "+col("t", lsnCol)+")",
		ident(seqCol)+" = IFF("+isNewer+", "+col("s", seqCol)+", "+col("t", seqCol)+")")
	insCols = append(insCols, ident(lsnCol), ident(seqCol), ident(colvCol))
	insVals = append(insVals, col("s", lsnCol), col("s", seqCol), "IFF("+col("s", fullCol)+", NULL, "+recordSQL(toastNames, insEntries)+")")
	watermark := "(" + col("s", lsnCol) + " > ? OR (" + col("s", lsnCol) + " = ? AND " + col("s", seqCol) + " > ?))"
	del := col("s", delCol)
	hasRecord := col("t", colvCol) + " IS NOT NULL"
	// The columns of a row newer than the floor that are older than it.
	var invalidate string
	if names := append(slices.Clip(toastNames), opt.others...); len(names) > 0 {
		invalidate = " WHEN MATCHED AND " + hasRecord + " AND " + fv + " IS NOT NULL"
		if opt.soft {
			invalidate += " AND NOT " + col("t", deletedCol)
		}
		invalidate += " THEN UPDATE SET " + strings.Join(invalidateItems(names, fv), ", ")
	}

	if opt.soft {
		b.WriteString(" WHEN MATCHED AND " + del + " AND " + isNewer + " THEN UPDATE SET " + ident(deletedCol) + " = TRUE, " +
			ident(lsnCol) + " = " + col("s", lsnCol) + ", " + ident(seqCol) + " = " + col("s", seqCol))
		b.WriteString(" WHEN MATCHED AND NOT " + del + " AND (" + isNewer + " OR " + hasRecord + " AND NOT " + col("t", deletedCol) + " AND " +
			watermark + ") THEN UPDATE SET " + strings.Join(append(set, ident(deletedCol)+" = FALSE"), ", "))
		b.WriteString(invalidate)
		b.WriteString(" WHEN NOT MATCHED AND " + watermark + " THEN INSERT (" + strings.Join(append(insCols, ident(deletedCol)), ", ") +
			") VALUES (" + strings.Join(append(insVals, del), ", ") + ")")
		return b.String()
	}
	if opt.clearDeleted {
		set = append(set, ident(deletedCol)+" = FALSE")
		insCols = append(insCols, ident(deletedCol))
		insVals = append(insVals, "FALSE")
	}
	tl, ts := col("s", tombLSNCol), col("s", tombSeqCol)
	insertable := "(" + tl + " IS NULL OR " + newer(col("s", lsnCol), col("s", seqCol), tl, ts) + ") AND " + watermark
	b.WriteString(" WHEN MATCHED AND " + tv + " < " + fv + " AND (" + del + " OR NOT (" + insertable + ")) THEN DELETE")
	b.WriteString(" WHEN MATCHED AND NOT " + del + " AND (" + isNewer + " OR " + hasRecord + " AND (" + tl + " IS NULL OR NOT " +
		newer(tl, ts, col("s", lsnCol), col("s", seqCol)) + ") AND " + watermark + ") THEN UPDATE SET " + strings.Join(set, ", "))
	b.WriteString(invalidate)
	b.WriteString(" WHEN NOT MATCHED AND NOT " + del + " AND " + insertable +
		" THEN INSERT (" + strings.Join(insCols, ", ") + ") VALUES (" + strings.Join(insVals, ", ") + ")")
	return b.String()
}

// tombSQL maintains the tombstones after mergeSQL (hard delete): a staged
// delete records or advances its key's tombstone; a staged upsert newer
// than the tombstone supersedes it (the row's own version guards the key
// from then on). A tombstone recorded for a delete that lost to a newer
// stored row is harmless: it is older than the row.
func tombSQL(o objects, s shape) string {
	var keyNames, keyVals []string
	for _, k := range s.keyCols() {
		keyNames = append(keyNames, ident(k.name))
		keyVals = append(keyVals, col("s", k.name))
	}
	isNewer := newer(col("s", lsnCol), col("s", seqCol), col("x", lsnCol), col("x", seqCol))
	del := col("s", delCol)
	return "MERGE INTO " + o.tomb + " AS x USING " + o.stage + " AS s ON " + keyMatch("x", "s", s) +
		" WHEN MATCHED AND NOT " + del + " AND " + isNewer + " THEN DELETE" +
		" WHEN MATCHED AND " + del + " AND " + isNewer + " THEN UPDATE SET " + ident(lsnCol) + " = " + col("s", lsnCol) + ", " +
		ident(seqCol) + " = " + col("s", seqCol) +
		" WHEN NOT MATCHED AND " + del + " THEN INSERT (" + strings.Join(append(keyNames, ident(lsnCol), ident(seqCol)), ", ") +
		") VALUES (" + strings.Join(append(keyVals, col("s", lsnCol), col("s", seqCol)), ", ") + ")"
}

// keyMatch joins two aliases on the key columns.
func keyMatch(a, b string, s shape) string {
	var parts []string
	for _, k := range s.keyCols() {
		parts = append(parts, s.keyEq(col(a, k.name), col(b, k.name)))
	}
	return strings.Join(parts, " AND ")
}

// keyEq compares two key values: with "=" when the keys cannot hold NULL,
// NULL-safe otherwise (NULL matches NULL, as the source's key does under
// REPLICA IDENTITY FULL), which "=" would never match: every change of such
// a row would insert it again.
func (s shape) keyEq(a, b string) string {
	if s.nullableKeys {
		return a + " IS NOT DISTINCT FROM " + b
	}
	return a + " = " + b
}

// keysNullable reports whether the key columns of a batch's columns may
// hold NULL: only when every column is a key, which is how a source table
// without a primary key under REPLICA IDENTITY FULL arrives (a primary key
// or a replica identity index never holds NULL).
func keysNullable(cols []stageColumn) bool {
	if len(cols) == 0 {
		return false
	}
	for _, c := range cols {
		if !c.key && c.source != "" {
			return false
		}
	}
	return true
}
