package fakesnowflake

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// textLength is what Snowflake reports for an unbounded VARCHAR.
const textLength = 16777216

// colEncoder turns one DuckDB value into its Snowflake JSON-rowset string.
type colEncoder func(v any) (string, error)

// wrapKind says how a DuckDB column must be re-selected so the fake gets its text:
// duckdb-go decodes JSON into Go maps (losing number precision and key order) and
// nested types into Go structures.
type wrapKind int

const (
	wrapNone wrapKind = iota
	wrapVarchar
	wrapToJSON
)

// classify maps a DuckDB result column to Snowflake rowtype metadata.
func classify(ct *sql.ColumnType) (column, wrapKind) {
	name := ct.DatabaseTypeName()
	c := column{Name: decodeName(ct.Name()), Nullable: true}
	switch {
	case name == "BOOLEAN":
		c.Type = "boolean"
	case name == "TINYINT", name == "SMALLINT", name == "INTEGER", name == "BIGINT",
		name == "UTINYINT", name == "USMALLINT", name == "UINTEGER", name == "UBIGINT",
		name == "HUGEINT", name == "UHUGEINT", name == "BIGNUM":
		c.Type, c.Precision = "fixed", 38
	case strings.HasPrefix(name, "DECIMAL"):
		c.Type = "fixed"
		// duckdb-go reports the size only in the type name: DECIMAL(p,s).
		if _, err := fmt.Sscanf(name, "DECIMAL(%d,%d)", &c.Precision, &c.Scale); err != nil {
			c.Precision, c.Scale = 38, 0
		}
	case name == "FLOAT", name == "DOUBLE":
		c.Type = "real"
	case name == "VARCHAR", name == "ENUM", name == "SQLNULL":
		c.Type, c.Length = "text", textLength
	case name == "BLOB":
		c.Type, c.Length = "binary", 8388608
	case name == "DATE":
		c.Type = "date"
	case name == "TIME":
		c.Type, c.Scale = "time", 9
	case name == "TIMESTAMP", name == "TIMESTAMP_S", name == "TIMESTAMP_MS", name == "TIMESTAMP_NS":
		c.Type, c.Scale = "timestamp_ntz", 9
	case name == "TIMESTAMPTZ":
		// The UTC offset a TIMESTAMP_TZ value was written with is not kept by DuckDB;
		// values come back at offset 0 (see the package doc).
		c.Type, c.Scale = "timestamp_tz", 9
	case name == "JSON":
		c.Type, c.Length = "variant", textLength
		return c, wrapVarchar
	case strings.HasPrefix(name, "STRUCT"), strings.HasPrefix(name, "MAP"):
		c.Type, c.Length = "object", textLength
		return c, wrapToJSON
	case strings.HasSuffix(name, "]"):
		c.Type, c.Length = "array", textLength
		return c, wrapToJSON
	default: // UUID, INTERVAL, TIMETZ, UNION, BIT, ...: their text form
		c.Type, c.Length = "text", textLength
		return c, wrapVarchar
	}
	return c, wrapNone
}

// encoderFor returns the rowset encoder for a classified column.
func encoderFor(c column) colEncoder {
	switch c.Type {
	case "boolean":
		return func(v any) (string, error) {
			b, ok := v.(bool)
			if !ok {
				return "", fmt.Errorf("boolean column got %T", v)
			}
			if b {
				return "1", nil
			}
			return "0", nil
		}
	case "fixed":
		return encodeFixed
	case "real":
		return func(v any) (string, error) {
			var f float64
			switch x := v.(type) {
			case float64:
				f = x
			case float32:
				f = float64(x)
			default:
				return "", fmt.Errorf("real column got %T", v)
			}
			switch {
			case math.IsNaN(f):
				return "NaN", nil
			case math.IsInf(f, 1):
				return "inf", nil
			case math.IsInf(f, -1):
				return "-inf", nil
			}
			return strconv.FormatFloat(f, 'g', -1, 64), nil
		}
	case "binary":
		return func(v any) (string, error) {
			b, ok := v.([]byte)
			if !ok {
				return "", fmt.Errorf("binary column got %T", v)
			}
			return strings.ToUpper(hex.EncodeToString(b)), nil
		}
	case "date":
		return func(v any) (string, error) {
			t, ok := v.(time.Time)
			if !ok {
				return "", fmt.Errorf("date column got %T", v)
			}
			return itoa(floorDiv(t.Unix(), 86400)), nil
		}
	case "time":
		return func(v any) (string, error) {
			t, ok := v.(time.Time)
			if !ok {
				return "", fmt.Errorf("time column got %T", v)
			}
			secs := int64(t.Hour()*3600 + t.Minute()*60 + t.Second())
			return fmt.Sprintf("%d.%09d", secs, t.Nanosecond()), nil
		}
	case "timestamp_ntz":
		return func(v any) (string, error) {
			t, ok := v.(time.Time)
			if !ok {
				return "", fmt.Errorf("timestamp column got %T", v)
			}
			return epochString(t), nil
		}
	case "timestamp_tz":
		return func(v any) (string, error) {
			t, ok := v.(time.Time)
			if !ok {
				return "", fmt.Errorf("timestamp_tz column got %T", v)
			}
			_, off := t.Zone()
			return fmt.Sprintf("%s %d", epochString(t), off/60+1440), nil
		}
	case "variant", "object", "array":
		return encodeVariant
	}
	return func(v any) (string, error) {
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
		return fmt.Sprint(v), nil
	}
}

// epochString is Snowflake's "seconds.nanoseconds" since the epoch. Seconds are
// floored so the fraction is never negative, which is what gosnowflake's parser
// (seconds, then a separately parsed fraction) needs for instants before 1970.
// Not through UnixNano, which overflows outside 1678-2262 while Snowflake's
// timestamps span years 1 to 9999.
func epochString(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func encodeFixed(v any) (string, error) {
	switch x := v.(type) {
	case duckdb.Decimal:
		return formatDecimal(x.Value, int(x.Scale)), nil
	case *big.Int:
		return x.String(), nil
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64, int, uint:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("fixed column got %T", v)
}

// formatDecimal renders an unscaled integer with scale digits after the point, as
// Snowflake does for NUMBER(p,s) ("1.50" for 150 at scale 2).
func formatDecimal(unscaled *big.Int, scale int) string {
	s := new(big.Int).Abs(unscaled).String()
	if scale > 0 {
		if len(s) <= scale {
			s = strings.Repeat("0", scale-len(s)+1) + s
		}
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	}
	if unscaled.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// encodeVariant renders JSON text the way Snowflake prints a VARIANT: object keys
// sorted, two-space indentation, numbers exactly as stored.
func encodeVariant(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprint(v), nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return s, nil //nolint:nilerr // not JSON (e.g. a bare string): pass it through
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return "", fmt.Errorf("re-encode variant: %w", err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// query runs a row-returning statement and encodes its result. When a column's
// DuckDB type cannot be read as text directly (JSON, nested types) and rerun is
// allowed (the statement has no side effects), the query is re-run wrapped so
// those columns are cast to text inside DuckDB.
func (ss *session) query(ctx context.Context, q string, args []any, rerun bool) (*result, error) {
	return ss.queryAs(ctx, q, args, rerun, nil)
}

// queryAs is query with the Snowflake column types given (for the re-run wrapper,
// whose DuckDB columns are all text).
func (ss *session) queryAs(ctx context.Context, q string, args []any, rerun bool, as []column) (*result, error) {
	rows, err := ss.conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, ss.duckErr(err)
	}
	cts, err := rows.ColumnTypes()
	if err != nil {
		_ = rows.Close()
		return nil, fmt.Errorf("column types: %w", err)
	}
	cols := make([]column, len(cts))
	wraps := make([]wrapKind, len(cts))
	needWrap := false
	for i, ct := range cts {
		cols[i], wraps[i] = classify(ct)
		needWrap = needWrap || wraps[i] != wrapNone
	}
	if as != nil {
		cols, needWrap = as, false
	}
	if needWrap && rerun {
		_ = rows.Close()
		var sel []string
		for i, c := range cols {
			ref := "#" + strconv.Itoa(i+1)
			switch wraps[i] {
			case wrapVarchar:
				ref = "CAST(" + ref + " AS VARCHAR)"
			case wrapToJSON:
				ref = "CAST(to_json(" + ref + ") AS VARCHAR)"
			}
			sel = append(sel, ref+" AS "+quoteIdent(c.Name))
		}
		wrapped := "SELECT " + strings.Join(sel, ", ") + " FROM (" + q + ") AS fakesnowflake_q"
		return ss.queryAs(ctx, wrapped, args, false, cols)
	}
	defer rows.Close()
	encs := make([]colEncoder, len(cols))
	for i, c := range cols {
		encs[i] = encoderFor(c)
	}
	res := &result{columns: cols, rows: [][]*string{}, stmtType: stmtSelect}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("scan row: %w", err)
		}
		row := make([]*string, len(cols))
		for i, v := range vals {
			if v == nil {
				continue
			}
			s, err := encs[i](v)
			if err != nil {
				return nil, fmt.Errorf("encode column %s: %w", cols[i].Name, err)
			}
			row[i] = &s
		}
		res.rows = append(res.rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, ss.duckErr(err)
	}
	return res, nil
}

// --- bindings ----------------------------------------------------------------------

// decodeBindings turns the client's bindings into DuckDB argument rows. A binding
// whose value is a JSON array is an array bind: row i takes element i of each.
func decodeBindings(b map[string]bindingJSON) ([][]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	type entry struct {
		pos  int
		bind bindingJSON
	}
	entries := make([]entry, 0, len(b))
	for k, v := range b {
		n, err := strconv.Atoi(k)
		if err != nil {
			return nil, unsupported("named bind variable %q", k)
		}
		entries = append(entries, entry{n, v})
	}
	byPos := make([]bindingJSON, len(entries))
	for _, e := range entries {
		if e.pos < 1 || e.pos > len(entries) {
			return nil, &sfError{code: "002049", sqlState: "07001", msg: fmt.Sprintf("bind variable %d out of range (%d bindings)", e.pos, len(entries))}
		}
		byPos[e.pos-1] = e.bind
	}
	nrows := -1
	columns := make([][]*string, len(byPos))
	for i, bj := range byPos {
		raw := bytes.TrimSpace(bj.Value)
		switch {
		case len(raw) == 0 || string(raw) == "null":
			columns[i] = []*string{nil}
		case raw[0] == '[':
			var arr []*string
			if err := json.Unmarshal(raw, &arr); err != nil {
				return nil, fmt.Errorf("array binding %d: %w", i+1, err)
			}
			columns[i] = arr
			if nrows >= 0 && nrows != len(arr) {
				return nil, &sfError{code: "002049", sqlState: "07001", msg: "array bindings have different lengths"}
			}
			nrows = len(arr)
		default:
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("binding %d: %w", i+1, err)
			}
			columns[i] = []*string{&s}
		}
	}
	if nrows < 0 {
		nrows = 1
	}
	out := make([][]any, nrows)
	for r := range out {
		row := make([]any, len(byPos))
		for i, bj := range byPos {
			var s *string
			if len(columns[i]) == 1 {
				s = columns[i][0]
			} else {
				s = columns[i][r]
			}
			v, err := bindValue(bj.Type, s)
			if err != nil {
				return nil, &sfError{code: "002049", sqlState: "22018", msg: fmt.Sprintf("bind variable %d (%s): %v", i+1, bj.Type, err)}
			}
			row[i] = v
		}
		out[r] = row
	}
	return out, nil
}

// bindValue converts one bind value from the client's wire form to a DuckDB
// argument. Types follow gosnowflake: dates in epoch milliseconds, times in
// nanoseconds since midnight, timestamps in epoch nanoseconds (TZ with
// " <offsetMinutes+1440>"), binary in hex.
func bindValue(typ string, s *string) (any, error) {
	if s == nil {
		return nil, nil
	}
	v := *s
	switch strings.ToUpper(typ) {
	case "FIXED":
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n, nil
		}
		return v, nil // DuckDB casts the text to the target DECIMAL
	case "REAL":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, err
		}
		return f, nil
	case "BOOLEAN":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, err
		}
		return b, nil
	case "DATE":
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, err
		}
		return time.UnixMilli(ms).UTC().Format("2006-01-02"), nil
	case "TIME":
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, err
		}
		return time.Unix(0, ns).UTC().Format("15:04:05.999999999"), nil
	case "TIMESTAMP_NTZ", "TIMESTAMP_LTZ":
		ns, ok := new(big.Int).SetString(v, 10)
		if !ok {
			return nil, fmt.Errorf("not epoch nanoseconds: %q", v)
		}
		return time.Unix(0, ns.Int64()).UTC(), nil
	case "TIMESTAMP_TZ":
		nsText, offText, ok := strings.Cut(v, " ")
		if !ok {
			return nil, fmt.Errorf("want \"<epoch ns> <offset+1440>\", got %q", v)
		}
		ns, err := strconv.ParseInt(nsText, 10, 64)
		if err != nil {
			return nil, err
		}
		off, err := strconv.Atoi(offText)
		if err != nil {
			return nil, err
		}
		return time.Unix(0, ns).In(time.FixedZone("", (off-1440)*60)), nil
	case "BINARY":
		b, err := hex.DecodeString(v)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	return v, nil // TEXT, VARIANT, OBJECT, ARRAY (JSON text), ANY
}
