package duckdb

import (
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
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

var dateText = regexp.MustCompile(`^([0-9]{4,})-([0-9]{2})-([0-9]{2})( BC)?$`)

// convertDate reads date's ISO output ("2024-01-02", "0044-03-15 BC",
// "infinity") and writes it with an astronomical year, which DuckDB reads:
// 1 BC is year 0. Every PostgreSQL date fits DuckDB's DATE.
func convertDate(s string) (driver.Value, error) {
	if s == "infinity" || s == "-infinity" {
		return s, nil
	}
	m := dateText.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("not a date in ISO DateStyle: %w", errNotExact)
	}
	y, mo, d, err := ymd(m[1], m[2], m[3], m[4] != "")
	if err != nil {
		return nil, err
	}
	if err := checkDate(y, mo, d); err != nil {
		return nil, err
	}
	return formatYear(y) + fmt.Sprintf("-%02d-%02d", mo, d), nil
}

func ymd(ys, ms, ds string, bc bool) (y, m, d int, err error) {
	y, err1 := strconv.Atoi(ys)
	m, err2 := strconv.Atoi(ms)
	d, err3 := strconv.Atoi(ds)
	if err1 != nil || err2 != nil || err3 != nil || y > 100_000_000 {
		return 0, 0, 0, fmt.Errorf("date fields out of range: %w", errNotExact)
	}
	if bc {
		if y == 0 {
			return 0, 0, 0, fmt.Errorf("year 0 BC does not exist: %w", errNotExact)
		}
		y = 1 - y
	}
	return y, m, d, nil
}

func checkDate(y, m, d int) error {
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Year() != y || int(t.Month()) != m || t.Day() != d {
		return fmt.Errorf("not a calendar date: %w", errNotExact)
	}
	return nil
}

func formatYear(y int) string {
	if y < 0 {
		return fmt.Sprintf("-%04d", -y)
	}
	return fmt.Sprintf("%04d", y)
}

var timestampText = regexp.MustCompile(`^([0-9]{4,})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?` +
	`(?:([+-])([0-9]{2})(?::([0-9]{2}))?(?::([0-9]{2}))?)?( BC)?$`)

// DuckDB stores a timestamp as microseconds since 1970 in an int64 whose
// extremes mean ±infinity; the last finite instant is 294247-01-10
// 04:00:54.775806 UTC. PostgreSQL goes up to 294276 AD.
const maxTimestampMicros = math.MaxInt64 - 1

// timestampConverter reads timestamp / timestamptz ISO output
// ("2024-01-02 03:04:05.123456", with "+05:30"-style offsets for tz,
// " BC" for BC years, "infinity", "-infinity") and writes a form DuckDB
// reads exactly: astronomical year, six fraction digits, and for tz the
// instant in UTC.
func timestampConverter(tz bool) func(string) (driver.Value, error) {
	name := "timestamp"
	if tz {
		name = "timestamptz"
	}
	return func(s string) (driver.Value, error) {
		if s == "infinity" || s == "-infinity" {
			return s, nil
		}
		m := timestampText.FindStringSubmatch(s)
		if m == nil || (m[8] != "") != tz {
			return nil, fmt.Errorf("not a %s in ISO DateStyle: %w", name, errNotExact)
		}
		y, mo, d, err := ymd(m[1], m[2], m[3], m[12] != "")
		if err != nil {
			return nil, err
		}
		if err := checkDate(y, mo, d); err != nil {
			return nil, err
		}
		hh, _ := strconv.Atoi(m[4])
		mi, _ := strconv.Atoi(m[5])
		ss, _ := strconv.Atoi(m[6])
		if hh > 23 || mi > 59 || ss > 59 {
			return nil, fmt.Errorf("time of day out of range: %w", errNotExact)
		}
		us := fraction(m[7])
		t := time.Date(y, time.Month(mo), d, hh, mi, ss, us*1000, time.UTC)
		if tz {
			off, err := offsetSeconds(m[8], m[9], m[10], m[11])
			if err != nil {
				return nil, err
			}
			t = t.Add(-time.Duration(off) * time.Second)
		}
		// Seconds since 1970 fit an int64 for any year PostgreSQL has;
		// the microseconds may not, which is what DuckDB cannot hold.
		sec := t.Unix()
		if sec > maxTimestampMicros/1_000_000 || (sec == maxTimestampMicros/1_000_000 && int64(us) > maxTimestampMicros%1_000_000) ||
			sec < -maxTimestampMicros/1_000_000 {
			return nil, fmt.Errorf("beyond DuckDB's timestamp range (294247-01-10 04:00:54.775806 UTC): %w", errNotExact)
		}
		out := formatYear(t.Year()) + fmt.Sprintf("-%02d-%02d %02d:%02d:%02d.%06d", t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), us)
		if tz {
			out += "+00"
		}
		return out, nil
	}
}

// fraction turns up to six fraction digits into microseconds.
func fraction(digits string) int {
	if digits == "" {
		return 0
	}
	v, _ := strconv.Atoi(digits + strings.Repeat("0", 6-len(digits)))
	return v
}

// offsetSeconds reads a UTC offset "+05", "-03:30", "+00:53:28" and checks
// it against the ±15:59:59 both PostgreSQL and DuckDB allow.
func offsetSeconds(sign, hh, mm, ss string) (int, error) {
	h, _ := strconv.Atoi(hh)
	m, s := 0, 0
	if mm != "" {
		m, _ = strconv.Atoi(mm)
	}
	if ss != "" {
		s, _ = strconv.Atoi(ss)
	}
	if h > 15 || m > 59 || s > 59 {
		return 0, fmt.Errorf("UTC offset out of range: %w", errNotExact)
	}
	off := h*3600 + m*60 + s
	if sign == "-" {
		off = -off
	}
	return off, nil
}

var timeText = regexp.MustCompile(`^([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?(?:([+-])([0-9]{2})(?::([0-9]{2}))?(?::([0-9]{2}))?)?$`)

// timeConverter reads time / timetz output ("03:04:05.123456",
// "24:00:00", "03:04:05+05:30"); DuckDB's TIME also goes up to 24:00:00
// and its TIMETZ keeps the offset, like PostgreSQL's.
func timeConverter(tz bool) func(string) (driver.Value, error) {
	name := "time"
	if tz {
		name = "timetz"
	}
	return func(s string) (driver.Value, error) {
		m := timeText.FindStringSubmatch(s)
		if m == nil || (m[5] != "") != tz {
			return nil, fmt.Errorf("not a %s: %w", name, errNotExact)
		}
		hh, _ := strconv.Atoi(m[1])
		mi, _ := strconv.Atoi(m[2])
		ss, _ := strconv.Atoi(m[3])
		us := fraction(m[4])
		if mi > 59 || ss > 59 || hh > 24 || (hh == 24 && (mi != 0 || ss != 0 || us != 0)) {
			return nil, fmt.Errorf("time of day out of range: %w", errNotExact)
		}
		out := fmt.Sprintf("%02d:%02d:%02d.%06d", hh, mi, ss, us)
		if tz {
			off, err := offsetSeconds(m[5], m[6], m[7], m[8])
			if err != nil {
				return nil, err
			}
			sign := "+"
			if off < 0 {
				sign, off = "-", -off
			}
			out += fmt.Sprintf("%s%02d:%02d:%02d", sign, off/3600, off/60%60, off%60)
		}
		return out, nil
	}
}

var intervalTime = regexp.MustCompile(`^([+-])?([0-9]+):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?$`)

// convertInterval reads interval output in IntervalStyle postgres (which
// capture pins): "1 year 2 mons -3 days +04:05:06.789". PostgreSQL and
// DuckDB both keep an interval as months (int32), days (int32) and
// microseconds (int64), so the value is sent as those three fields, never
// re-spelled as text. PostgreSQL 17's infinite intervals have no DuckDB form.
func convertInterval(s string) (driver.Value, error) {
	if s == "infinity" || s == "-infinity" {
		return nil, fmt.Errorf("infinite interval: %w", errNotExact)
	}
	var months, days, micros int64
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, fmt.Errorf("empty interval: %w", errNotExact)
	}
	bad := fmt.Errorf("not an interval in IntervalStyle postgres: %w", errNotExact)
	overflow := fmt.Errorf("interval field out of range: %w", errNotExact)
	for i := 0; i < len(fields); i++ {
		if m := intervalTime.FindStringSubmatch(fields[i]); m != nil {
			if i != len(fields)-1 {
				return nil, bad
			}
			h, err := strconv.ParseInt(m[2], 10, 64)
			if err != nil {
				return nil, overflow
			}
			mi, _ := strconv.ParseInt(m[3], 10, 64)
			ss, _ := strconv.ParseInt(m[4], 10, 64)
			if mi > 59 || ss > 59 {
				return nil, bad
			}
			// |h| * 3.6e9 + the rest must fit an int64; negative values
			// may reach one further (math.MinInt64).
			rest := mi*60_000_000 + ss*1_000_000 + int64(fraction(m[5]))
			limit := uint64(math.MaxInt64)
			if m[1] == "-" {
				limit++
			}
			if uint64(h) > (limit-uint64(rest))/3_600_000_000 {
				return nil, overflow
			}
			abs := uint64(h)*3_600_000_000 + uint64(rest)
			if m[1] == "-" {
				micros = int64(-abs) // two's complement also gives MinInt64
			} else {
				micros = int64(abs)
			}
			continue
		}
		if i+1 >= len(fields) {
			return nil, bad
		}
		n, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil {
			return nil, bad
		}
		if n > 1<<40 || n < -1<<40 {
			return nil, overflow
		}
		i++
		switch fields[i] {
		case "year", "years":
			months += n * 12
		case "mon", "mons":
			months += n
		case "day", "days":
			days += n
		default:
			return nil, bad
		}
		if months > math.MaxInt32 || months < math.MinInt32 || days > math.MaxInt32 || days < math.MinInt32 {
			return nil, overflow
		}
	}
	return duckdb.Interval{Months: int32(months), Days: int32(days), Micros: micros}, nil
}
