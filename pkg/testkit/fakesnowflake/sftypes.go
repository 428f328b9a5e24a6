package fakesnowflake

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Snowflake's names for the fake's DuckDB column types, where Snowflake is
// strict about them: INFORMATION_SCHEMA.COLUMNS shows Snowflake's type
// names and sizes, and ALTER COLUMN … SET DATA TYPE refuses what Snowflake
// refuses (another type family, a new scale, a shorter VARCHAR) with its
// error 040052 instead of letting DuckDB convert the column.

// Snowflake's maximum (and default) lengths of VARCHAR and BINARY.
const (
	maxVarcharLength = 16777216
	maxBinaryLength  = 8388608
)

// sfType is a column type as Snowflake names it.
type sfType struct {
	family           string // INFORMATION_SCHEMA.COLUMNS.DATA_TYPE: NUMBER, TEXT, FLOAT, …
	precision, scale int    // NUMBER
	length           int64  // TEXT, BINARY: declared or the maximum
}

// String is the type as Snowflake prints it in messages: NUMBER(10,2),
// VARCHAR(16777216), TIMESTAMP_NTZ(9).
func (t sfType) String() string {
	switch t.family {
	case "NUMBER":
		return fmt.Sprintf("NUMBER(%d,%d)", t.precision, t.scale)
	case "TEXT":
		return fmt.Sprintf("VARCHAR(%d)", t.length)
	case "BINARY":
		return fmt.Sprintf("BINARY(%d)", t.length)
	case "TIME", "TIMESTAMP_NTZ", "TIMESTAMP_TZ":
		return t.family + "(9)"
	}
	return t.family
}

// snowflakeType maps a DuckDB type name (duckdb_columns().data_type, or
// the fake's rewrite of a Snowflake type) and a declared length (0: none)
// to Snowflake's type.
func snowflakeType(duck string, length int64) sfType {
	duck = strings.ToUpper(strings.TrimSpace(duck))
	switch {
	case strings.HasPrefix(duck, "DECIMAL"):
		p, s := 18, 3 // DuckDB's DECIMAL without modifiers
		if open := strings.IndexByte(duck, '('); open > 0 {
			parts := strings.Split(strings.TrimSuffix(duck[open+1:], ")"), ",")
			p, _ = strconv.Atoi(strings.TrimSpace(parts[0]))
			if len(parts) > 1 {
				s, _ = strconv.Atoi(strings.TrimSpace(parts[1]))
			} else {
				s = 0
			}
		}
		return sfType{family: "NUMBER", precision: p, scale: s}
	case duck == "BIGINT" || duck == "INTEGER" || duck == "SMALLINT" || duck == "TINYINT" || duck == "HUGEINT":
		return sfType{family: "NUMBER", precision: 38}
	case duck == "VARCHAR":
		if length <= 0 {
			length = maxVarcharLength
		}
		return sfType{family: "TEXT", length: length}
	case duck == "BLOB":
		if length <= 0 {
			length = maxBinaryLength
		}
		return sfType{family: "BINARY", length: length}
	case duck == "DOUBLE" || duck == "FLOAT" || duck == "REAL":
		return sfType{family: "FLOAT"}
	case duck == "TIMESTAMP":
		return sfType{family: "TIMESTAMP_NTZ"}
	case duck == "TIMESTAMP WITH TIME ZONE" || duck == "TIMESTAMPTZ":
		return sfType{family: "TIMESTAMP_TZ"}
	case duck == "JSON":
		return sfType{family: "VARIANT"}
	}
	return sfType{family: duck} // BOOLEAN, DATE, TIME
}

// typeChangeError is Snowflake's refusal of ALTER COLUMN … SET DATA TYPE
// from old to new, or nil when Snowflake allows it: the same type family,
// a VARCHAR no shorter, a NUMBER with the same scale (a lower precision is
// allowed when the values fit; DuckDB's conversion then checks them).
func typeChangeError(column string, old, new sfType) error {
	because := ""
	switch {
	case old.family != new.family:
	case old.family == "NUMBER" && old.scale != new.scale:
		because = " because changing the scale of a number is not supported"
	case old.family == "TEXT" && new.length < old.length:
		because = " because reducing the byte-length of a varchar is not supported"
	default:
		return nil
	}
	return &sfError{code: "040052", sqlState: "22000", msg: fmt.Sprintf("SQL compilation error: cannot change column %s from type %s to %s%s.",
		column, old, new, because)}
}

// checkTypeChange refuses, as Snowflake does, an ALTER COLUMN … SET DATA
// TYPE of column to the rewritten DuckDB type typ with declared length n.
// A column the fake cannot find is left to DuckDB's own error.
func (ss *session) checkTypeChange(ctx context.Context, db, schema, table, column string, typ []token, n int64) error {
	catalog, lengths := db, map[string]int64{}
	if _, temp := ss.temps[tempKey(db, schema, table)]; temp {
		catalog, schema = "temp", "main"
	} else {
		lengths = ss.srv.lengthsOf(db, schema, table)
	}
	var name, dataType string
	err := ss.conn.QueryRowContext(ctx, `SELECT column_name, data_type FROM duckdb_columns()
		WHERE database_name = $1 AND schema_name = $2 AND table_name = $3 AND column_name = $4`,
		encodeName(catalog), encodeName(schema), encodeName(table), encodeName(column)).Scan(&name, &dataType)
	if err != nil {
		return nil
	}
	name = decodeName(name)
	return typeChangeError(name, snowflakeType(dataType, lengths[name]), snowflakeType(render(typ), n))
}

// columnsViewSQL is the part of Snowflake's INFORMATION_SCHEMA.COLUMNS the
// fake emulates, over DuckDB's duckdb_columns() of database db: names,
// position, Snowflake's type name and sizes (DATA_TYPE,
// CHARACTER_MAXIMUM_LENGTH, CHARACTER_OCTET_LENGTH, NUMERIC_PRECISION,
// NUMERIC_PRECISION_RADIX, NUMERIC_SCALE, DATETIME_PRECISION),
// nullability and the column comment. Declared VARCHAR and BINARY lengths
// come from what the fake keeps (lengths.go).
func (s *Server) columnsViewSQL(db string) string {
	var lens []string
	s.mu.Lock()
	prefix := tableLoadKey(db, "", "")
	prefix = prefix[:len(prefix)-1] // "table/<db>/"
	for key, cols := range s.lengths {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok {
			continue
		}
		schema, table, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		for col, n := range cols {
			lens = append(lens, fmt.Sprintf("(%s, %s, %s, %d)", quoteString(schema), quoteString(table), quoteString(col), n))
		}
	}
	s.mu.Unlock()
	sort.Strings(lens) // a stable statement text
	lenJoin := ""
	lenCol := "NULL"
	if len(lens) > 0 {
		lenJoin = ` LEFT JOIN (VALUES ` + strings.Join(lens, ", ") + `) AS l(lschema, ltable, lcolumn, llength) ON l.lschema = ` + decodeSQL("c.schema_name") + ` AND l.ltable = ` + decodeSQL("c.table_name") + ` AND l.lcolumn = ` + decodeSQL("c.column_name")
		lenCol = "l.llength"
	}
	family := `CASE WHEN c.data_type LIKE 'DECIMAL%' OR c.data_type IN ('BIGINT', 'INTEGER', 'SMALLINT', 'TINYINT', 'HUGEINT') THEN 'NUMBER' ` +
		`WHEN c.data_type = 'VARCHAR' THEN 'TEXT' WHEN c.data_type = 'BLOB' THEN 'BINARY' WHEN c.data_type IN ('DOUBLE', 'FLOAT') THEN 'FLOAT' ` +
		`WHEN c.data_type = 'TIMESTAMP' THEN 'TIMESTAMP_NTZ' WHEN c.data_type = 'TIMESTAMP WITH TIME ZONE' THEN 'TIMESTAMP_TZ' ` +
		`WHEN c.data_type = 'JSON' THEN 'VARIANT' ELSE c.data_type END`
	maxLen := `CASE WHEN c.data_type = 'VARCHAR' THEN coalesce(` + lenCol + `, ` + strconv.Itoa(maxVarcharLength) + `) ` +
		`WHEN c.data_type = 'BLOB' THEN coalesce(` + lenCol + `, ` + strconv.Itoa(maxBinaryLength) + `) END`
	octets := `CASE WHEN c.data_type = 'VARCHAR' THEN least(4 * coalesce(` + lenCol + `, ` + strconv.Itoa(maxVarcharLength) + `), ` +
		strconv.Itoa(maxVarcharLength) + `) WHEN c.data_type = 'BLOB' THEN coalesce(` + lenCol + `, ` + strconv.Itoa(maxBinaryLength) + `) END`
	isNumber := `(c.data_type LIKE 'DECIMAL%' OR c.data_type IN ('BIGINT', 'INTEGER', 'SMALLINT', 'TINYINT', 'HUGEINT'))`
	return `(SELECT ` + decodeSQL("c.database_name") + ` AS "TABLE_CATALOG", ` + decodeSQL("c.schema_name") + ` AS "TABLE_SCHEMA", ` +
		decodeSQL("c.table_name") + ` AS "TABLE_NAME", ` + decodeSQL("c.column_name") + ` AS "COLUMN_NAME", c.column_index AS "ORDINAL_POSITION", ` + family + ` AS "DATA_TYPE", ` +
		maxLen + ` AS "CHARACTER_MAXIMUM_LENGTH", ` + octets + ` AS "CHARACTER_OCTET_LENGTH", ` +
		`CASE WHEN ` + isNumber + ` THEN CASE WHEN c.data_type LIKE 'DECIMAL%' THEN c.numeric_precision ELSE 38 END END AS "NUMERIC_PRECISION", ` +
		`CASE WHEN ` + isNumber + ` THEN 10 END AS "NUMERIC_PRECISION_RADIX", ` +
		`CASE WHEN ` + isNumber + ` THEN CASE WHEN c.data_type LIKE 'DECIMAL%' THEN c.numeric_scale ELSE 0 END END AS "NUMERIC_SCALE", ` +
		`CASE WHEN c.data_type IN ('TIME', 'TIMESTAMP', 'TIMESTAMP WITH TIME ZONE') THEN 9 END AS "DATETIME_PRECISION", ` +
		`CASE WHEN c.is_nullable THEN 'YES' ELSE 'NO' END AS "IS_NULLABLE", NULLIF(c.comment, '') AS "COMMENT" ` +
		`FROM duckdb_columns() AS c` + lenJoin + ` WHERE c.database_name = ` + quoteString(encodeName(db)) + ` AND NOT c.internal)`
}
