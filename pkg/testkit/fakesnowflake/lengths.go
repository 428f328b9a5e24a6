package fakesnowflake

import (
	"context"
	"slices"
	"strconv"
)

// DuckDB's VARCHAR and BLOB have no length, so the fake keeps the lengths
// declared in CREATE TABLE, ADD COLUMN and ALTER COLUMN … SET DATA TYPE
// (VARCHAR(n), BINARY(n) and their synonyms) itself, per permanent table
// and column, and reports them in the result metadata of SELECT * FROM one
// table (what a driver reads a table's shape with); every other query
// reports Snowflake's maximum. enforce.go enforces them.

// declaredLength reads the explicit length of a string or binary type
// starting at toks[i]: VARCHAR(10) is 10; ok is false for other types and
// for a type without a length.
func declaredLength(toks []token, i int) (n int64, ok bool) {
	if i >= len(toks) || toks[i].kind != tkWord {
		return 0, false
	}
	switch toks[i].val {
	case "VARCHAR", "STRING", "TEXT", "NVARCHAR", "NVARCHAR2", "CHAR", "CHARACTER", "NCHAR", "BINARY", "VARBINARY":
	default:
		return 0, false
	}
	i++
	if i < len(toks) && toks[i].isWord("VARYING") {
		i++
	}
	if i+2 >= len(toks) || !toks[i].isPunct("(") || toks[i+1].kind != tkNumber || !toks[i+2].isPunct(")") {
		return 0, false
	}
	v, err := strconv.ParseInt(toks[i+1].text, 10, 64)
	return v, err == nil && v > 0
}

// setLength records (n > 0) or forgets (n <= 0) a column's declared length.
func (s *Server) setLength(db, schema, table, column string, n int64) {
	key := tableLoadKey(db, schema, table)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.lengths[key], column)
		return
	}
	if s.lengths[key] == nil {
		s.lengths[key] = map[string]int64{}
	}
	s.lengths[key][column] = n
}

// renameLength moves a column's declared length to its new name.
func (s *Server) renameLength(db, schema, table, from, to string) {
	key := tableLoadKey(db, schema, table)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.lengths[key][from]; ok {
		delete(s.lengths[key], from)
		s.lengths[key][to] = n
	}
}

// lengthsOf returns a copy of a table's declared lengths by column name.
func (s *Server) lengthsOf(db, schema, table string) map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.lengths[tableLoadKey(db, schema, table)]))
	for k, v := range s.lengths[tableLoadKey(db, schema, table)] {
		out[k] = v
	}
	return out
}

// recordDefLengths records the lengths a list of column definitions
// (CREATE TABLE's, or ADD COLUMN's) declares.
func (ss *session) recordDefLengths(db, schema, table string, defs []token) {
	forEachDefLength(defs, func(column string, n int64) { ss.srv.setLength(db, schema, table, column, n) })
}

// defLengths is the lengths a list of column definitions declares, by
// column name, as lengthsOf returns them.
func defLengths(defs []token) map[string]int64 {
	out := map[string]int64{}
	forEachDefLength(defs, func(column string, n int64) {
		if n > 0 {
			out[column] = n
		}
	})
	return out
}

// forEachDefLength calls f with each column a list of column definitions
// defines and its declared length (0: none).
func forEachDefLength(defs []token, f func(column string, n int64)) {
	for _, elem := range splitTopLevel(defs) {
		if len(elem) > 0 && elem[0].isWord("COLUMN") {
			elem = elem[1:]
		}
		if len(elem) > 3 && elem[0].isWord("IF") && elem[1].isWord("NOT") && elem[2].isWord("EXISTS") {
			elem = elem[3:]
		}
		if len(elem) < 2 || !elem[0].isIdent() || constraintStarts[elem[0].val] && elem[0].kind == tkWord {
			continue
		}
		n, _ := declaredLength(elem, 1)
		f(elem[0].val, n)
	}
}

// recordAlterLengths follows RENAME COLUMN and DROP COLUMN of an ALTER
// TABLE (rest: the tokens after the table's name).
func (ss *session) recordAlterLengths(db, schema, table string, rest []token) {
	switch {
	case len(rest) >= 5 && rest[0].isWord("RENAME") && rest[1].isWord("COLUMN") && rest[2].isIdent() && rest[3].isWord("TO") && rest[4].isIdent():
		ss.srv.renameLength(db, schema, table, rest[2].val, rest[4].val)
	case len(rest) >= 2 && rest[0].isWord("DROP"):
		items := rest[1:]
		if items[0].isWord("COLUMN") {
			items = items[1:]
		}
		if len(items) > 1 && items[0].isWord("IF") && items[1].isWord("EXISTS") {
			items = items[2:]
		}
		for _, it := range splitTopLevel(items) {
			if len(it) == 1 && it[0].isIdent() {
				ss.srv.setLength(db, schema, table, it[0].val, 0)
			}
		}
	}
}

// singleTableStar reports the table a SELECT * FROM <table> [WHERE … |
// ORDER BY … | LIMIT …] reads (not a session's temporary table).
func (ss *session) singleTableStar(toks []token) (db, schema, table string, ok bool) {
	if len(toks) < 4 || !toks[0].isWord("SELECT") || !toks[1].isPunct("*") || !toks[2].isWord("FROM") {
		return "", "", "", false
	}
	parts, next, found := readQualifiedName(toks, 3)
	if !found {
		return "", "", "", false
	}
	if next < len(toks) && !toks[next].isWord("WHERE") && !toks[next].isWord("ORDER") && !toks[next].isWord("LIMIT") {
		return "", "", "", false
	}
	if _, temp := ss.lookupTemp(parts); temp {
		return "", "", "", false
	}
	db, schema, table = ss.qualify(parts)
	return db, schema, table, true
}

// tableExists reports whether a permanent table exists.
func (ss *session) tableExists(ctx context.Context, db, schema, table string) bool {
	var n int
	err := ss.conn.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables() WHERE database_name = $1 AND schema_name = $2 AND table_name = $3`,
		encodeName(db), encodeName(schema), encodeName(table)).Scan(&n)
	return err == nil && n > 0
}

// Snowflake refuses DROP DEFAULT on a column whose default ALTER TABLE …
// ADD COLUMN … DEFAULT defined; the fake remembers those columns to refuse
// it too.

// markAddedDefault records that ADD COLUMN elem (a column definition) gave
// the column a default.
func (s *Server) markAddedDefault(db, schema, table string, elem []token) {
	if len(elem) == 0 || !elem[0].isIdent() || !slices.ContainsFunc(elem, func(t token) bool { return t.isWord("DEFAULT") }) {
		return
	}
	key := tableLoadKey(db, schema, table)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.added[key] == nil {
		s.added[key] = map[string]bool{}
	}
	s.added[key][elem[0].val] = true
}

// addedDefault reports whether ADD COLUMN gave the column its default.
func (s *Server) addedDefault(db, schema, table, column string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.added[tableLoadKey(db, schema, table)][column]
}
