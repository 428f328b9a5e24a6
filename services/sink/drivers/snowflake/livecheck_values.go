package snowflake

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// liveColumn is one PostgreSQL type of the live check's round trip
// (docs/snowflake.md, Type mapping): the base type an event carries and
// the text of its value in row i. The first values are the type's edge
// cases; the rest vary with i so that a few hundred rows differ.
type liveColumn struct {
	base  string
	edges []string
	gen   func(i int) string
}

// liveColumns covers every row of the type mapping: each Snowflake kind,
// and the PostgreSQL types that land in VARCHAR and VARIANT.
var liveColumns = []liveColumn{
	{"smallint", []string{"-32768", "32767", "0"}, func(i int) string { return strconv.Itoa(i*97%32767 - 16000) }},
	{"integer", []string{"-2147483648", "2147483647"}, func(i int) string { return strconv.Itoa(i * 7919) }},
	{"bigint", []string{"-9223372036854775808", "9223372036854775807"}, func(i int) string { return strconv.Itoa(i*1000000007 + i) }},
	{"oid", []string{"0", "4294967295"}, func(i int) string { return strconv.Itoa(i * 1000) }},
	{"numeric(12,4)", []string{"-99999999.9999", "99999999.9999", "0.0000", "-0.0100"},
		func(i int) string { return fmt.Sprintf("%d.%04d", i*37-5000, i*7%10000) }},
	{"numeric(38,0)", []string{"99999999999999999999999999999999999999", "-99999999999999999999999999999999999999"},
		func(i int) string { return fmt.Sprintf("%d%018d", i, i*i) }},
	{"numeric", []string{"NaN", "0.000000000001", "123456789012345678901234567890123456789012.5", "-0.10"},
		func(i int) string { return fmt.Sprintf("%d.%d0", i, i) }},
	{"real", []string{"NaN", "Infinity", "-Infinity", "3.4028235e+38", "-0", "1e-45"},
		func(i int) string { return strconv.FormatFloat(float64(float32(i)*0.1), 'g', -1, 32) }},
	{"double precision", []string{"NaN", "Infinity", "-Infinity", "1.7976931348623157e+308", "5e-324", "0.1"},
		func(i int) string { return strconv.FormatFloat(float64(i)/7, 'g', -1, 64) }},
	{"boolean", []string{"t", "f"}, func(i int) string { return map[bool]string{true: "t", false: "f"}[i%2 == 0] }},
	{"date", []string{"0001-01-01", "9999-12-31", "2024-02-29"},
		func(i int) string { return time.Date(2000, 1, 1+i*37, 0, 0, 0, 0, time.UTC).Format("2006-01-02") }},
	{"time without time zone", []string{"00:00:00", "23:59:59.999999"},
		func(i int) string { return pgTime(time.Duration(i) * 3671123456 * time.Microsecond) }},
	{"timestamp without time zone", []string{"0001-01-01 00:00:00", "9999-12-31 23:59:59.999999"},
		func(i int) string {
			return pgTimestamp(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 86399654321 * time.Microsecond))
		}},
	{"timestamp with time zone", []string{"2024-02-29 23:59:58.654321+05:30", "1970-01-01 00:00:00+00", "2000-06-30 12:00:00.5-09:30",
		"0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00"},
		func(i int) string {
			zone := []string{"+00", "+02", "-05:30", "+14"}[i%4]
			return pgTimestamp(time.Date(2021, 3, 28, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Hour+time.Duration(i)*time.Microsecond)) + zone
		}},
	{"time with time zone", []string{"00:00:00+00", "23:59:59.999999-15:59"},
		func(i int) string { return pgTime(time.Duration(i)*time.Minute) + "+02" }},
	{"bytea", []string{`\x`, `\x00`, `\xdeadbeef`},
		func(i int) string { return `\x` + hex.EncodeToString(bytes.Repeat([]byte{byte(i), byte(i * 3)}, i%20)) }},
	{"json", []string{`{"a": 1, "b": [true, null, "x"]}`, `[]`, `"s"`, `1.5`},
		func(i int) string { return fmt.Sprintf(`{"i": %d, "s": "v\"%d"}`, i, i) }},
	{"jsonb", []string{`{"n": -0.1000000000000000000000000000000000000000}`, `{}`, `null`},
		func(i int) string { return fmt.Sprintf(`{"a": [%d, "x"], "b": {"c": %d.5}}`, i, i) }},
	{"integer[]", []string{"{}", "{1,NULL,-2}", "{{1,2},{3,4}}"},
		func(i int) string { return fmt.Sprintf("{%d,%d}", i, -i) }},
	{"text[]", []string{"{}", `{a,"b c",NULL,"NULL","d\"e"}`},
		func(i int) string { return fmt.Sprintf(`{x%d,"y %d"}`, i, i) }},
	{"text", []string{"", "NULL", `\N`, "q\"uote, comma\nnewline", "ünïcödé 🎉", "tab\there"},
		func(i int) string { return "text " + strconv.Itoa(i) }},
	{"character varying(20)", []string{"", "12345678901234567890"},
		func(i int) string { return "v" + strconv.Itoa(i) }},
	{"uuid", []string{"00000000-0000-0000-0000-000000000000"},
		func(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i*i) }},
	{"interval", []string{"00:00:00", "-178000000 years", "1 year 2 mons 3 days 04:05:06.789"},
		func(i int) string { return fmt.Sprintf("%d days %02d:00:00", i, i%24) }},
}

// value is row i's text for c, or null. Every 13th row is NULL; the first
// rows take the edge cases.
func (c liveColumn) value(i int) (string, bool) {
	if i%13 == 0 {
		return "", true
	}
	if i <= len(c.edges) {
		return c.edges[i-1], false
	}
	return c.gen(i), false
}

// name is the check table's column for c: "c07_numeric_12_4".
func (c liveColumn) name(n int) string {
	slug := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, c.base)
	return fmt.Sprintf("c%02d_%s", n, strings.Trim(slug, "_"))
}

func pgTime(d time.Duration) string {
	d %= 24 * time.Hour
	return pgTimestamp(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(d))[11:]
}

// pgTimestamp prints t as PostgreSQL does: microseconds only when set.
func pgTimestamp(t time.Time) string { return t.Format("2006-01-02 15:04:05.999999") }

// sameValue compares what was sent (PostgreSQL's text) with what
// gosnowflake read back (scanned into a string: numbers and text as
// Snowflake sent them, time types as RFC 3339, binary as its bytes), as
// the column's kind defines equality. why says how they differ.
func sameValue(t colType, base, sent, got string) (ok bool, why string) {
	switch t.kind {
	case kindNumber:
		a, aok := new(big.Rat).SetString(sent)
		b, bok := new(big.Rat).SetString(got)
		return aok && bok && a.Cmp(b) == 0, "a different number"
	case kindFloat:
		a, aerr := strconv.ParseFloat(sent, 64)
		b, berr := strconv.ParseFloat(got, 64)
		return aerr == nil && berr == nil && (a == b || math.IsNaN(a) && math.IsNaN(b)), "a different double"
	case kindBoolean:
		b, err := strconv.ParseBool(got)
		return err == nil && b == (sent == "t" || sent == "true"), "a different boolean"
	case kindDate:
		g, err := time.Parse(time.RFC3339Nano, got)
		return err == nil && g.Format("2006-01-02") == sent, "a different date"
	case kindTime:
		s, serr := time.Parse("15:04:05.999999", sent)
		g, gerr := time.Parse(time.RFC3339Nano, got)
		return serr == nil && gerr == nil && s.Format("15:04:05.000000") == g.Format("15:04:05.000000"), "a different time of day"
	case kindTimestampNTZ:
		s, serr := time.Parse("2006-01-02 15:04:05.999999", sent)
		g, gerr := time.Parse(time.RFC3339Nano, got)
		// NTZ has no zone: compare the wall clocks.
		return serr == nil && gerr == nil && s.Equal(time.Date(g.Year(), g.Month(), g.Day(), g.Hour(), g.Minute(), g.Second(), g.Nanosecond(), time.UTC)),
			"a different timestamp"
	case kindTimestampTZ, kindTimestampLTZ:
		iso, err := encodeTimestamp(sent, true)
		if err != nil {
			return false, err.Error()
		}
		s, serr := time.Parse("2006-01-02T15:04:05.999999999Z07:00", iso)
		g, gerr := time.Parse(time.RFC3339Nano, got)
		return serr == nil && gerr == nil && s.Equal(g), "a different instant"
	case kindBinary:
		b, err := hex.DecodeString(strings.TrimPrefix(sent, `\x`))
		return err == nil && string(b) == got, "different bytes"
	case kindVariant:
		want, err := encodeVariant(base, sent)
		if err != nil {
			return false, err.Error()
		}
		return jsonSame(want, got), "a different JSON value"
	}
	return sent == got, "different text"
}

// jsonSame compares two JSON documents by value: key order, spacing and
// number spelling (1.50 and 1.5) do not count.
func jsonSame(a, b string) bool {
	decode := func(s string) (any, bool) {
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		var v any
		return v, d.Decode(&v) == nil
	}
	va, aok := decode(a)
	vb, bok := decode(b)
	return aok && bok && jsonValueEqual(va, vb)
}

func jsonValueEqual(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		bn, ok := b.(json.Number)
		if !ok {
			return false
		}
		x, xok := new(big.Rat).SetString(a.String())
		y, yok := new(big.Rat).SetString(bn.String())
		return xok && yok && x.Cmp(y) == 0
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return false
		}
		for i := range a {
			if !jsonValueEqual(a[i], bs[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			if w, ok := bm[k]; !ok || !jsonValueEqual(v, w) {
				return false
			}
		}
		return true
	}
	return a == b
}
