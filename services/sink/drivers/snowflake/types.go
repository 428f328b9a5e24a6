package snowflake

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// kind is how a Snowflake column stores values, which decides how a
// PostgreSQL text value is checked and written to the staging file.
type kind int

const (
	kindText kind = iota
	kindNumber
	kindFloat
	kindBoolean
	kindDate
	kindTime
	kindTimestampNTZ
	kindTimestampTZ
	kindTimestampLTZ
	kindBinary
	kindVariant // VARIANT, OBJECT or ARRAY: loaded as JSON text through PARSE_JSON
)

// colType is a Snowflake column type.
type colType struct {
	kind kind
	// precision and scale of NUMBER; precision of TIME and TIMESTAMP_*.
	precision, scale int
	// length is the declared length of VARCHAR or BINARY; 0 is the maximum.
	length int
	// variant is VARIANT, OBJECT or ARRAY for kindVariant.
	variant string
}

// Snowflake's limits: the default (and, before 2025, maximum) size in
// bytes of VARCHAR and VARIANT values and of BINARY values, and the digits
// of a NUMBER.
const (
	maxTextBytes    = 16 << 20
	maxBinaryBytes  = 8 << 20
	maxNumberDigits = 38
)

// sql is the type as written in DDL.
func (t colType) sql() string {
	switch t.kind {
	case kindNumber:
		return fmt.Sprintf("NUMBER(%d,%d)", t.precision, t.scale)
	case kindFloat:
		return "FLOAT"
	case kindBoolean:
		return "BOOLEAN"
	case kindDate:
		return "DATE"
	case kindTime:
		return fmt.Sprintf("TIME(%d)", t.precision)
	case kindTimestampNTZ:
		return fmt.Sprintf("TIMESTAMP_NTZ(%d)", t.precision)
	case kindTimestampTZ:
		return fmt.Sprintf("TIMESTAMP_TZ(%d)", t.precision)
	case kindTimestampLTZ:
		return fmt.Sprintf("TIMESTAMP_LTZ(%d)", t.precision)
	case kindBinary:
		if t.length > 0 {
			return fmt.Sprintf("BINARY(%d)", t.length)
		}
		return "BINARY"
	case kindVariant:
		return t.variant
	}
	if t.length > 0 {
		return fmt.Sprintf("VARCHAR(%d)", t.length)
	}
	return "VARCHAR"
}

// stageSQL is the type of the column in the staging table: the column's own
// type, so that COPY converts and checks each value, except that JSON
// (VARIANT, OBJECT, ARRAY) is staged as text and parsed by the MERGE, and
// times are staged at full precision and rounded by Snowflake on the way
// into the target like any assignment.
func (t colType) stageSQL() string {
	switch t.kind {
	case kindVariant:
		return "VARCHAR"
	case kindText, kindBinary:
		t.length = 0 // lengths are checked before staging
	case kindTime, kindTimestampNTZ, kindTimestampTZ, kindTimestampLTZ:
		t.precision = 9
	}
	return t.sql()
}

var (
	numericMod = regexp.MustCompile(`^numeric\((\d+)(?:,\s*(-?\d+))?\)$`)
	timeMod    = regexp.MustCompile(`^(time|timestamp)(?:\((\d)\))? (with|without) time zone$`)
)

// mapType is the Snowflake type of a new column for a PostgreSQL base type
// (format_type's text: "numeric(10,2)", "timestamp(3) with time zone",
// "integer[]"). Precision is kept wherever Snowflake can hold every value of
// the source type; where it cannot, the column is VARCHAR holding
// PostgreSQL's exact text (see docs/snowflake.md).
func mapType(baseType string) colType {
	b := strings.TrimSpace(baseType)
	if strings.HasSuffix(b, "[]") {
		return colType{kind: kindVariant, variant: "VARIANT"}
	}
	switch b {
	case "smallint":
		return colType{kind: kindNumber, precision: 5}
	case "integer":
		return colType{kind: kindNumber, precision: 10}
	case "bigint":
		return colType{kind: kindNumber, precision: 19}
	case "oid":
		return colType{kind: kindNumber, precision: 10}
	case "real", "double precision":
		return colType{kind: kindFloat}
	case "boolean":
		return colType{kind: kindBoolean}
	case "date":
		return colType{kind: kindDate}
	case "bytea":
		return colType{kind: kindBinary}
	case "json", "jsonb":
		return colType{kind: kindVariant, variant: "VARIANT"}
	}
	if m := numericMod.FindStringSubmatch(b); m != nil {
		p, _ := strconv.Atoi(m[1])
		s := 0
		if m[2] != "" {
			s, _ = strconv.Atoi(m[2])
		}
		// Snowflake: 1 <= precision <= 38, 0 <= scale <= min(precision, 37).
		// PostgreSQL also allows wider, negative or larger-than-precision
		// scales; those stay exact as text.
		if p >= 1 && p <= maxNumberDigits && s >= 0 && s <= p && s <= 37 {
			return colType{kind: kindNumber, precision: p, scale: s}
		}
		return colType{kind: kindText}
	}
	if m := timeMod.FindStringSubmatch(b); m != nil {
		p := 6 // PostgreSQL keeps microseconds
		if m[2] != "" {
			p, _ = strconv.Atoi(m[2])
		}
		switch {
		case m[1] == "time" && m[3] == "without":
			return colType{kind: kindTime, precision: p}
		case m[1] == "timestamp" && m[3] == "without":
			return colType{kind: kindTimestampNTZ, precision: p}
		case m[1] == "timestamp":
			return colType{kind: kindTimestampTZ, precision: p}
		}
		// time with time zone has no Snowflake type: text.
	}
	// numeric without precision (any scale, up to 131072 digits), text,
	// varchar, uuid, interval, money, network and geometric types, ranges,
	// enums and extension types: PostgreSQL's text.
	return colType{kind: kindText}
}

// typeFromResult reads a column type from gosnowflake's result metadata
// (DatabaseTypeName, DecimalSize, Length). ok is false for types Rosetta
// cannot load (GEOGRAPHY, VECTOR, ...).
func typeFromResult(name string, precision, scale, length int64) (colType, bool) {
	switch strings.ToUpper(name) {
	case "FIXED", "NUMBER", "DECIMAL":
		return colType{kind: kindNumber, precision: int(precision), scale: int(scale)}, true
	case "REAL", "FLOAT", "DOUBLE":
		return colType{kind: kindFloat}, true
	case "TEXT", "VARCHAR", "STRING":
		if length >= maxTextBytes {
			length = 0
		}
		return colType{kind: kindText, length: int(length)}, true
	case "BOOLEAN":
		return colType{kind: kindBoolean}, true
	case "DATE":
		return colType{kind: kindDate}, true
	case "TIME":
		return colType{kind: kindTime, precision: 9}, true
	case "TIMESTAMP_NTZ":
		return colType{kind: kindTimestampNTZ, precision: 9}, true
	case "TIMESTAMP_TZ":
		return colType{kind: kindTimestampTZ, precision: 9}, true
	case "TIMESTAMP_LTZ":
		return colType{kind: kindTimestampLTZ, precision: 9}, true
	case "BINARY":
		if length >= maxBinaryBytes {
			length = 0
		}
		return colType{kind: kindBinary, length: int(length)}, true
	case "VARIANT", "OBJECT", "ARRAY":
		return colType{kind: kindVariant, variant: strings.ToUpper(name)}, true
	}
	return colType{}, false
}

// encode converts one PostgreSQL text value of base type baseType into the
// text Snowflake's CSV loader turns into exactly that value in a column of
// type t. It fails, with a reason that never quotes the value, when t
// cannot hold the value exactly: the caller reports it as a permanent error
// naming the table and column.
func encode(t colType, baseType, v string) (string, error) {
	switch t.kind {
	case kindNumber:
		return v, checkNumber(t, v)
	case kindFloat:
		return encodeFloat(v)
	case kindBoolean:
		switch v {
		case "true", "t":
			return "true", nil
		case "false", "f":
			return "false", nil
		}
		return "", fmt.Errorf("%s is not a boolean", describeValue(v))
	case kindDate:
		return v, checkDate(v)
	case kindTime:
		return v, checkTime(v)
	case kindTimestampNTZ:
		return encodeTimestamp(v, false)
	case kindTimestampTZ, kindTimestampLTZ:
		return encodeTimestamp(v, true)
	case kindBinary:
		return encodeBinary(t, v)
	case kindVariant:
		return encodeVariant(baseType, v)
	}
	if !utf8.ValidString(v) {
		return "", badEncoding("the text is not valid UTF-8")
	}
	if len(v) > maxTextBytes {
		return "", tooLong("the text is %d bytes; a Snowflake VARCHAR holds at most %d", len(v), maxTextBytes)
	}
	if t.length > 0 {
		if n := utf8.RuneCountInString(v); n > t.length {
			return "", tooLong("the text is %d characters; the column is VARCHAR(%d)", n, t.length)
		}
	}
	return v, nil
}

// classError is why a value cannot be stored, with the dead-letter class
// it is reported under (a sinkrunner.Class… constant). Reasons without one
// are sinkrunner.ClassInvalidValue.
type classError struct {
	class string
	msg   string
}

func (e *classError) Error() string { return e.msg }

func outOfRange(format string, args ...any) error {
	return &classError{class: sinkrunner.ClassOutOfRange, msg: fmt.Sprintf(format, args...)}
}

func tooLong(format string, args ...any) error {
	return &classError{class: sinkrunner.ClassTooLong, msg: fmt.Sprintf(format, args...)}
}

func badEncoding(format string, args ...any) error {
	return &classError{class: sinkrunner.ClassEncoding, msg: fmt.Sprintf(format, args...)}
}

// describeValue names a special value, or the shape of any other, for error
// messages that must not leak column contents.
func describeValue(v string) string {
	switch strings.ToLower(v) {
	case "nan", "infinity", "-infinity", "+infinity", "inf", "-inf":
		return "the value " + v
	}
	return fmt.Sprintf("a %d-byte value", len(v))
}

// checkNumber accepts a plain decimal ([-]digits[.digits]) that NUMBER(p,s)
// holds exactly: at most p-s integer digits and no non-zero digit beyond
// scale s (Snowflake would round it).
func checkNumber(t colType, v string) error {
	s := strings.TrimPrefix(v, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" || !allDigits(intPart) || !allDigits(frac) {
		if strings.EqualFold(s, "nan") || strings.EqualFold(s, "infinity") {
			return outOfRange("%s has no NUMBER(%d,%d) representation", describeValue(v), t.precision, t.scale)
		}
		return fmt.Errorf("%s is not a decimal number", describeValue(v))
	}
	intPart = strings.TrimLeft(intPart, "0")
	frac = strings.TrimRight(frac, "0")
	if len(intPart) > t.precision-t.scale {
		return outOfRange("the number has %d integer digits; NUMBER(%d,%d) holds %d", len(intPart), t.precision, t.scale, t.precision-t.scale)
	}
	if len(frac) > t.scale {
		return outOfRange("the number has %d decimal places; NUMBER(%d,%d) would round it to %d", len(frac), t.precision, t.scale, t.scale)
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// encodeFloat maps PostgreSQL's special float values to Snowflake's
// ('NaN', 'inf', '-inf') and checks the rest parse as a double.
func encodeFloat(v string) (string, error) {
	switch v {
	case "NaN":
		return "NaN", nil
	case "Infinity":
		return "inf", nil
	case "-Infinity":
		return "-inf", nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsInf(f, 0) {
		return "", fmt.Errorf("%s is not a finite double", describeValue(v))
	}
	return v, nil
}

// Snowflake stores years 1 to 9999 reliably; PostgreSQL also has BC years,
// years up to 294276 and ±infinity, none of which Snowflake can hold.
func checkYearText(v string) error {
	switch {
	case strings.HasSuffix(v, " BC"):
		return outOfRange("dates before year 1 (BC) are outside Snowflake's range")
	case strings.Contains(v, "infinity"):
		return outOfRange("%s has no Snowflake representation", describeValue(v))
	}
	if i := strings.IndexByte(v, '-'); i != 4 {
		return outOfRange("the year is outside Snowflake's range 1-9999, or %s is not an ISO date", describeValue(v))
	}
	return nil
}

func checkDate(v string) error {
	if err := checkYearText(v); err != nil {
		return err
	}
	if t, err := time.Parse("2006-01-02", v); err != nil || t.Year() < 1 {
		return fmt.Errorf("%s is not an ISO date between years 1 and 9999", describeValue(v))
	}
	return nil
}

// checkTime accepts PostgreSQL's time output except 24:00:00, which it
// allows and Snowflake's TIME (ending at 23:59:59.999999999) does not.
func checkTime(v string) error {
	if strings.HasPrefix(v, "24:") {
		return outOfRange("24:00:00 is past Snowflake's last TIME, 23:59:59.999999999")
	}
	if _, err := time.Parse("15:04:05.999999999", v); err != nil {
		return fmt.Errorf("%s is not a time of day", describeValue(v))
	}
	return nil
}

// encodeTimestamp rewrites PostgreSQL's ISO timestamp output into ISO 8601,
// the form Snowflake's AUTO format detection reads without ambiguity:
// "YYYY-MM-DDTHH24:MI:SS.FF9" and, with a zone, "…FF9+HH:MM". PostgreSQL
// prints offsets as +HH, +HH:MM or +HH:MM:SS; Snowflake keeps minutes, so a
// value with an offset in seconds (historical local mean time) is written
// in UTC: the same instant.
func encodeTimestamp(v string, withZone bool) (string, error) {
	if err := checkYearText(v); err != nil {
		return "", err
	}
	layout := "2006-01-02 15:04:05.999999999"
	if withZone {
		sign := strings.LastIndexAny(v, "+-")
		if sign < 10 {
			return "", fmt.Errorf("%s is not a timestamp with a UTC offset", describeValue(v))
		}
		switch strings.Count(v[sign:], ":") {
		case 0:
			layout += "-07"
		case 1:
			layout += "-07:00"
		default:
			layout += "-07:00:00"
		}
	}
	ts, err := time.Parse(layout, v)
	if err != nil || ts.Year() < 1 || ts.Year() > 9999 {
		return "", fmt.Errorf("%s is not an ISO timestamp between years 1 and 9999", describeValue(v))
	}
	if !withZone {
		return ts.Format("2006-01-02T15:04:05.000000000"), nil
	}
	if _, off := ts.Zone(); off%60 != 0 {
		ts = ts.UTC()
	}
	return ts.Format("2006-01-02T15:04:05.000000000-07:00"), nil
}

// encodeBinary turns bytea's hex output (\x0a1b) into the bare hex that
// Snowflake loads with BINARY_FORMAT = HEX.
func encodeBinary(t colType, v string) (string, error) {
	h, ok := strings.CutPrefix(v, `\x`)
	if !ok {
		return "", fmt.Errorf("bytea is not in hex output format (set bytea_output = 'hex' at the source)")
	}
	if len(h)%2 != 0 {
		return "", fmt.Errorf("bytea hex has an odd number of digits")
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("bytea hex is malformed")
	}
	limit := maxBinaryBytes
	if t.length > 0 {
		limit = t.length
	}
	if n := len(h) / 2; n > limit {
		return "", tooLong("the value is %d bytes; the BINARY column holds at most %d", n, limit)
	}
	return h, nil
}

// encodeVariant produces the JSON text PARSE_JSON turns into the value:
// json and jsonb as they are (after checking Snowflake keeps them exactly),
// arrays converted from PostgreSQL's array syntax, anything else as a JSON
// string.
func encodeVariant(baseType, v string) (string, error) {
	var out string
	switch {
	case baseType == "json" || baseType == "jsonb":
		if err := checkJSON(v, baseType == "json"); err != nil {
			return "", err
		}
		out = v
	case strings.HasSuffix(baseType, "[]"):
		j, err := arrayToJSON(v, strings.TrimSuffix(baseType, "[]"))
		if err != nil {
			return "", err
		}
		out = j
	default:
		if !utf8.ValidString(v) {
			return "", badEncoding("the text is not valid UTF-8")
		}
		b, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("encode text as a JSON string: %w", err)
		}
		out = string(b)
	}
	if len(out) > maxTextBytes {
		return "", tooLong("the JSON is %d bytes; a Snowflake VARIANT holds at most %d", len(out), maxTextBytes)
	}
	return out, nil
}

// checkJSON rejects JSON that Snowflake's VARIANT would not keep exactly:
// numbers with more digits than NUMBER(38) holds (stored as a double, so
// rounded), numbers beyond a double's range, and (with dupKeys, for
// PostgreSQL's json type; jsonb never has them) objects with a duplicate
// key, which PARSE_JSON refuses. It runs on every JSON value of a batch, so
// it scans the text once without decoding it.
func checkJSON(v string, dupKeys bool) error {
	if !utf8.ValidString(v) {
		return badEncoding("the JSON text is not valid UTF-8")
	}
	if !json.Valid([]byte(v)) {
		return fmt.Errorf("the value is not valid JSON")
	}
	// In valid JSON, a string that follows '{' or ',' inside an object is
	// a key. stack holds, per open container, whether it is an object and
	// the keys seen so far (as raw text between the quotes).
	var stack []jsonFrame
	expectKey := false
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == '{' || c == '[':
			if dupKeys {
				stack = append(stack, jsonFrame{object: c == '{'})
			}
			expectKey = c == '{'
			i++
		case c == '}' || c == ']':
			if dupKeys {
				stack = stack[:len(stack)-1]
			}
			expectKey = false
			i++
		case c == ',':
			expectKey = dupKeys && stack[len(stack)-1].object
			i++
		case c == '"':
			j := i + 1
			for v[j] != '"' {
				if v[j] == '\\' {
					j++
				}
				j++
			}
			if expectKey && dupKeys {
				if f := &stack[len(stack)-1]; f.seen(unquote(v[i+1 : j])) {
					return fmt.Errorf("a JSON object has the key %q twice; Snowflake's VARIANT cannot hold duplicate keys", unquote(v[i+1:j]))
				}
			}
			expectKey = false
			i = j + 1
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(v) && strings.IndexByte("0123456789.eE+-", v[j]) >= 0 {
				j++
			}
			if err := checkJSONNumber(v[i:j]); err != nil {
				return err
			}
			i = j
		default:
			i++
		}
	}
	return nil
}

// jsonFrame is an open JSON container and, for an object, its keys: a
// short list while small (most objects), a set beyond.
type jsonFrame struct {
	object bool
	keys   []string
	set    map[string]bool
}

func (f *jsonFrame) seen(key string) bool {
	if f.set != nil {
		if f.set[key] {
			return true
		}
		f.set[key] = true
		return false
	}
	for _, k := range f.keys {
		if k == key {
			return true
		}
	}
	f.keys = append(f.keys, key)
	if len(f.keys) > 32 {
		f.set = make(map[string]bool, 64)
		for _, k := range f.keys {
			f.set[k] = true
		}
	}
	return false
}

// unquote decodes the escapes of a JSON string's raw content (without
// allocating when there are none).
func unquote(raw string) string {
	if strings.IndexByte(raw, '\\') < 0 {
		return raw
	}
	var s string
	if json.Unmarshal([]byte(`"`+raw+`"`), &s) != nil {
		return raw
	}
	return s
}

func checkJSONNumber(n string) error {
	if strings.ContainsAny(n, "eE") {
		f, err := strconv.ParseFloat(n, 64)
		if err != nil || math.IsInf(f, 0) {
			return outOfRange("a JSON number (%d characters) is beyond the range of Snowflake's VARIANT numbers", len(n))
		}
		return nil
	}
	intPart, frac, _ := strings.Cut(strings.TrimPrefix(n, "-"), ".")
	intDigits, fracDigits := len(strings.TrimLeft(intPart, "0")), len(strings.TrimRight(frac, "0"))
	// A VARIANT keeps a decimal exactly as NUMBER(38, s) with s <= 37;
	// anything wider becomes a double.
	if intDigits+fracDigits > maxNumberDigits || fracDigits > 37 {
		return outOfRange("a JSON number needs %d digits (%d after the point); Snowflake's VARIANT keeps 38 (37) exactly and rounds wider ones to a double",
			intDigits+fracDigits, fracDigits)
	}
	return nil
}
