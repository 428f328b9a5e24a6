package duckdb

import (
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// DuckDB type names as its catalog (duckdb_columns().data_type) prints them.
const (
	typeVarchar     = "VARCHAR"
	typeTimestampTZ = "TIMESTAMP WITH TIME ZONE"
	typeTimeTZ      = "TIME WITH TIME ZONE"
)

// maxDecimalWidth is DuckDB's largest DECIMAL precision.
const maxDecimalWidth = 38

var (
	numericMod   = regexp.MustCompile(`^numeric\((\d+)(?:,(-?\d+))?\)$`)
	timestampMod = regexp.MustCompile(`^timestamp(?:\(\d\))? with(out)? time zone$`)
	timeMod      = regexp.MustCompile(`^time(?:\(\d\))? with(out)? time zone$`)
	intervalMod  = regexp.MustCompile(`^interval(?:\(\d\)| [a-z ]+(?:\(\d\))?)?$`)
)

// columnType is the DuckDB type of a destination column created for a
// source column of base type baseType (PostgreSQL's format_type spelling).
// Every PostgreSQL value of that type has an exact DuckDB representation,
// except where noted in docs/duckdb.md (infinite intervals, timestamps past
// DuckDB's year 294247, numeric NaN/Infinity in a DECIMAL column): those
// are refused with a permanent error, never rounded or clamped. Types
// without an exact DuckDB counterpart keep PostgreSQL's text in VARCHAR.
func columnType(baseType string) string {
	switch baseType {
	case "smallint":
		return "SMALLINT"
	case "integer":
		return "INTEGER"
	case "bigint":
		return "BIGINT"
	case "real":
		return "FLOAT"
	case "double precision":
		return "DOUBLE"
	case "boolean":
		return "BOOLEAN"
	case "bytea":
		return "BLOB"
	case "date":
		return "DATE"
	case "uuid":
		return "UUID"
	case "json", "jsonb":
		return "JSON"
	}
	if m := numericMod.FindStringSubmatch(baseType); m != nil {
		p, perr := strconv.Atoi(m[1])
		s, serr := 0, error(nil)
		if m[2] != "" {
			s, serr = strconv.Atoi(m[2])
		}
		// DuckDB's DECIMAL holds 1..38 digits with 0 <= scale <= width;
		// PostgreSQL also allows more digits, a negative scale and a
		// scale above the precision. Those keep their exact text.
		if perr == nil && serr == nil && p >= 1 && p <= maxDecimalWidth && s >= 0 && s <= p {
			return fmt.Sprintf("DECIMAL(%d,%d)", p, s)
		}
		return typeVarchar
	}
	if m := timestampMod.FindStringSubmatch(baseType); m != nil {
		if m[1] == "out" {
			return "TIMESTAMP"
		}
		return typeTimestampTZ
	}
	if m := timeMod.FindStringSubmatch(baseType); m != nil {
		if m[1] == "out" {
			return "TIME"
		}
		return typeTimeTZ
	}
	if intervalMod.MatchString(baseType) {
		return "INTERVAL"
	}
	// numeric without a precision (DuckDB would have to round), text,
	// varchar(n), char(n), arrays, ranges, geometric, network and bit
	// string types, money, xml, tsvector, enums and extension types.
	return typeVarchar
}

// typeSpelling accepts the DuckDB type names that are safe to splice into
// DDL and casts: upper-case words, an optional modifier list and array
// brackets ("DECIMAL(10,2)", "TIMESTAMP WITH TIME ZONE", "VARCHAR[]").
var typeSpelling = regexp.MustCompile(`^[A-Z][A-Z0-9_]*( [A-Z][A-Z0-9_]*)*(\([0-9]+(,[0-9]+)*\))?(\[[0-9]*\])*$`)

// converter turns a value's PostgreSQL text form into what the staging
// loader sends for a destination column: a Go value of the wire type, which
// the load statement casts to the column's type when the two differ.
type converter struct {
	// wire is the DuckDB type of the values convert returns.
	wire duckdb.Type
	// convert returns the value to send, or an error saying why the
	// destination type cannot hold the text exactly.
	convert func(text string) (driver.Value, error)
}

// converterFor returns the converter for a destination column of DuckDB
// type typ. Types Rosetta creates are converted exactly in Go; other types
// (in tables created by someone else) are sent as text and cast by DuckDB.
// It fails for a type name that is not safe to put into SQL.
func converterFor(typ string) (converter, error) {
	switch typ {
	case "TINYINT":
		return converter{duckdb.TYPE_TINYINT, intConverter(8)}, nil
	case "SMALLINT":
		return converter{duckdb.TYPE_SMALLINT, intConverter(16)}, nil
	case "INTEGER":
		return converter{duckdb.TYPE_INTEGER, intConverter(32)}, nil
	case "BIGINT":
		return converter{duckdb.TYPE_BIGINT, intConverter(64)}, nil
	case "FLOAT":
		return converter{duckdb.TYPE_FLOAT, convertFloat32}, nil
	case "DOUBLE":
		return converter{duckdb.TYPE_DOUBLE, convertFloat64}, nil
	case "BOOLEAN":
		return converter{duckdb.TYPE_BOOLEAN, convertBool}, nil
	case "BLOB":
		return converter{duckdb.TYPE_BLOB, convertBytea}, nil
	case "VARCHAR", "JSON":
		// JSON is cast from the text as is: DuckDB checks it is JSON
		// and stores the text unchanged.
		return converter{duckdb.TYPE_VARCHAR, convertText}, nil
	case "DATE":
		return converter{duckdb.TYPE_VARCHAR, convertDate}, nil
	case "TIMESTAMP":
		return converter{duckdb.TYPE_VARCHAR, timestampConverter(false)}, nil
	case typeTimestampTZ:
		return converter{duckdb.TYPE_VARCHAR, timestampConverter(true)}, nil
	case "TIME":
		return converter{duckdb.TYPE_VARCHAR, timeConverter(false)}, nil
	case typeTimeTZ:
		return converter{duckdb.TYPE_VARCHAR, timeConverter(true)}, nil
	case "INTERVAL":
		return converter{duckdb.TYPE_INTERVAL, convertInterval}, nil
	case "UUID":
		return converter{duckdb.TYPE_VARCHAR, convertUUID}, nil
	}
	if p, s, ok := decimalType(typ); ok {
		return converter{duckdb.TYPE_VARCHAR, decimalConverter(p, s)}, nil
	}
	if !typeSpelling.MatchString(typ) {
		return converter{}, fmt.Errorf("destination column type %q is not one Rosetta can write", typ)
	}
	return converter{duckdb.TYPE_VARCHAR, convertText}, nil
}

var decimalSpelling = regexp.MustCompile(`^DECIMAL\((\d+),(\d+)\)$`)

func decimalType(typ string) (width, scale int, ok bool) {
	m := decimalSpelling.FindStringSubmatch(typ)
	if m == nil {
		return 0, 0, false
	}
	w, err1 := strconv.Atoi(m[1])
	s, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil || w < 1 || w > maxDecimalWidth || s > w {
		return 0, 0, false
	}
	return w, s, true
}

// wireName is the SQL spelling of a wire type.
func wireName(t duckdb.Type) string {
	switch t {
	case duckdb.TYPE_TINYINT:
		return "TINYINT"
	case duckdb.TYPE_SMALLINT:
		return "SMALLINT"
	case duckdb.TYPE_INTEGER:
		return "INTEGER"
	case duckdb.TYPE_BIGINT:
		return "BIGINT"
	case duckdb.TYPE_FLOAT:
		return "FLOAT"
	case duckdb.TYPE_DOUBLE:
		return "DOUBLE"
	case duckdb.TYPE_BOOLEAN:
		return "BOOLEAN"
	case duckdb.TYPE_BLOB:
		return "BLOB"
	case duckdb.TYPE_INTERVAL:
		return "INTERVAL"
	}
	return typeVarchar
}

// Wire types of the staging table's bookkeeping columns.
const (
	wireBool   = duckdb.TYPE_BOOLEAN
	wireBigint = duckdb.TYPE_BIGINT
)

// errNotExact is wrapped by every conversion error: the value has no exact
// representation in the destination column.
var errNotExact = errors.New("the destination type cannot hold it exactly")

func intConverter(bits int) func(string) (driver.Value, error) {
	return func(s string) (driver.Value, error) {
		v, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return nil, fmt.Errorf("not an integer of %d bits: %w", bits, errNotExact)
		}
		return v, nil
	}
}

// PostgreSQL prints floats in the shortest form that reads back to the same
// value (extra_float_digits 1, which capture pins), and "NaN", "Infinity",
// "-Infinity", all of which strconv reads exactly. Text that did not come
// from a float of the column's width (a double in a FLOAT column after the
// source column was widened, or a numeric) may carry more than the float
// holds, and ParseFloat would round it silently: the value is kept only if
// the text means the same number as the float's shortest form.
func convertFloat32(s string) (driver.Value, error) {
	v, err := strconv.ParseFloat(s, 32)
	if err != nil {
		return nil, fmt.Errorf("not a real: %w", errNotExact)
	}
	if !sameNumber(s, strconv.FormatFloat(v, 'g', -1, 32)) {
		return nil, fmt.Errorf("more digits than a real holds (would round to %s): %w", strconv.FormatFloat(v, 'g', -1, 32), errNotExact)
	}
	return float32(v), nil
}

func convertFloat64(s string) (driver.Value, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("not a double precision: %w", errNotExact)
	}
	if !sameNumber(s, strconv.FormatFloat(v, 'g', -1, 64)) {
		return nil, fmt.Errorf("more digits than a double precision holds (would round to %s): %w", strconv.FormatFloat(v, 'g', -1, 64), errNotExact)
	}
	return v, nil
}

// sameNumber reports whether two decimal spellings mean the same number;
// NaN and the infinities (which big.Rat does not read) only match
// themselves, whatever their case.
func sameNumber(a, b string) bool {
	if a == b {
		// The usual case: PostgreSQL and Go spell shortest floats alike
		// ("0.1", "1e+06", "5e-324").
		return true
	}
	ra, okA := new(big.Rat).SetString(a)
	rb, okB := new(big.Rat).SetString(b)
	if !okA || !okB {
		return strings.EqualFold(strings.TrimPrefix(a, "+"), strings.TrimPrefix(b, "+")) ||
			(strings.EqualFold(a, "infinity") && b == "+Inf") || (strings.EqualFold(a, "-infinity") && b == "-Inf") ||
			(strings.EqualFold(a, "nan") && b == "NaN")
	}
	return ra.Cmp(rb) == 0
}

func convertBool(s string) (driver.Value, error) {
	switch s {
	case "true", "t":
		return true, nil
	case "false", "f":
		return false, nil
	}
	return nil, fmt.Errorf("not a boolean: %w", errNotExact)
}

// convertBytea decodes bytea's hex output (\x0a1b…).
func convertBytea(s string) (driver.Value, error) {
	h, ok := strings.CutPrefix(s, `\x`)
	if !ok {
		return nil, fmt.Errorf("not bytea in hex output format (bytea_output = hex): %w", errNotExact)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("bytea hex: %w", errNotExact)
	}
	return b, nil
}

func convertText(s string) (driver.Value, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("not valid UTF-8: %w", errNotExact)
	}
	return s, nil
}

var uuidText = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func convertUUID(s string) (driver.Value, error) {
	if !uuidText.MatchString(s) {
		return nil, fmt.Errorf("not a uuid: %w", errNotExact)
	}
	return s, nil
}

var numericText = regexp.MustCompile(`^(-)?([0-9]+)(?:\.([0-9]+))?$`)

// decimalConverter checks that a numeric's text fits DECIMAL(width,scale)
// without rounding (DuckDB's own cast would round extra fraction digits)
// and returns it with exactly scale fraction digits.
func decimalConverter(width, scale int) func(string) (driver.Value, error) {
	return func(s string) (driver.Value, error) {
		m := numericText.FindStringSubmatch(s)
		if m == nil {
			// NaN, Infinity and -Infinity have no DECIMAL form.
			return nil, fmt.Errorf("not a finite number for DECIMAL(%d,%d): %w", width, scale, errNotExact)
		}
		sign, whole, frac := m[1], strings.TrimLeft(m[2], "0"), m[3]
		if len(whole) > width-scale {
			return nil, fmt.Errorf("more than %d digits before the point for DECIMAL(%d,%d): %w", width-scale, width, scale, errNotExact)
		}
		if len(frac) > scale {
			if strings.Trim(frac[scale:], "0") != "" {
				return nil, fmt.Errorf("more than %d digits after the point for DECIMAL(%d,%d) (would round): %w", scale, width, scale, errNotExact)
			}
			frac = frac[:scale]
		}
		if whole == "" {
			whole = "0"
		}
		if scale == 0 {
			return sign + whole, nil
		}
		return sign + whole + "." + frac + strings.Repeat("0", scale-len(frac)), nil
	}
}
