package snowflake

import (
	"strings"
	"testing"
)

func TestMapType(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"smallint":                       "NUMBER(5,0)",
		"integer":                        "NUMBER(10,0)",
		"bigint":                         "NUMBER(19,0)",
		"oid":                            "NUMBER(10,0)",
		"numeric(10,2)":                  "NUMBER(10,2)",
		"numeric(38,37)":                 "NUMBER(38,37)",
		"numeric(38,38)":                 "VARCHAR", // Snowflake's scale tops out at 37
		"numeric(5)":                     "NUMBER(5,0)",
		"numeric(39,2)":                  "VARCHAR",
		"numeric(5,-2)":                  "VARCHAR",
		"numeric(3,5)":                   "VARCHAR",
		"numeric":                        "VARCHAR",
		"real":                           "FLOAT",
		"double precision":               "FLOAT",
		"boolean":                        "BOOLEAN",
		"date":                           "DATE",
		"time without time zone":         "TIME(6)",
		"time(3) without time zone":      "TIME(3)",
		"time with time zone":            "VARCHAR",
		"timestamp without time zone":    "TIMESTAMP_NTZ(6)",
		"timestamp(0) without time zone": "TIMESTAMP_NTZ(0)",
		"timestamp with time zone":       "TIMESTAMP_TZ(6)",
		"timestamp(3) with time zone":    "TIMESTAMP_TZ(3)",
		"bytea":                          "BINARY",
		"json":                           "VARIANT",
		"jsonb":                          "VARIANT",
		"integer[]":                      "VARIANT",
		"character varying(20)[]":        "VARIANT",
		"text":                           "VARCHAR",
		"character varying(20)":          "VARCHAR",
		"uuid":                           "VARCHAR",
		"interval":                       "VARCHAR",
		"money":                          "VARCHAR",
		"inet":                           "VARCHAR",
		"int4range":                      "VARCHAR",
		`"char"`:                         "VARCHAR",
		"":                               "VARCHAR",
	} {
		if got := mapType(in).sql(); got != want {
			t.Errorf("mapType(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestEncode(t *testing.T) {
	t.Parallel()
	num := func(p, s int) colType { return colType{kind: kindNumber, precision: p, scale: s} }
	tests := []struct {
		typ     colType
		base    string
		in      string
		want    string
		wantErr string
	}{
		{num(10, 2), "numeric(10,2)", "-12345678.90", "-12345678.90", ""},
		{num(10, 2), "numeric(10,2)", "0.50", "0.50", ""},
		{num(10, 2), "numeric(12,4)", "1.5000", "1.5000", ""}, // trailing zeros beyond the scale are exact
		{num(10, 2), "numeric(12,4)", "1.5001", "", "4 decimal places; NUMBER(10,2) would round it to 2"},
		{num(10, 2), "numeric", "123456789", "", "9 integer digits; NUMBER(10,2) holds 8"},
		{num(10, 2), "numeric", "NaN", "", "NaN has no NUMBER(10,2) representation"},
		{num(10, 2), "numeric", "-Infinity", "", "-Infinity has no NUMBER(10,2)"},
		{num(19, 0), "bigint", "-9223372036854775808", "-9223372036854775808", ""},
		{num(10, 0), "text", "12a", "", "is not a decimal number"},
		{colType{kind: kindFloat}, "double precision", "Infinity", "inf", ""},
		{colType{kind: kindFloat}, "double precision", "-Infinity", "-inf", ""},
		{colType{kind: kindFloat}, "real", "NaN", "NaN", ""},
		{colType{kind: kindFloat}, "double precision", "1.7976931348623157e+308", "1.7976931348623157e+308", ""},
		{colType{kind: kindFloat}, "text", "x", "", "not a finite double"},
		{colType{kind: kindBoolean}, "boolean", "t", "true", ""},
		{colType{kind: kindBoolean}, "boolean", "false", "false", ""},
		{colType{kind: kindBoolean}, "text", "yes", "", "not a boolean"},
		{colType{kind: kindDate}, "date", "2024-02-29", "2024-02-29", ""},
		{colType{kind: kindDate}, "date", "0001-01-01", "0001-01-01", ""},
		{colType{kind: kindDate}, "date", "0044-03-15 BC", "", "before year 1"},
		{colType{kind: kindDate}, "date", "10000-01-01", "", "outside Snowflake's range"},
		{colType{kind: kindDate}, "date", "infinity", "", "no Snowflake representation"},
		{colType{kind: kindTime}, "time without time zone", "23:59:59.999999", "23:59:59.999999", ""},
		{colType{kind: kindTime}, "time without time zone", "24:00:00", "", "past Snowflake's last TIME"},
		{colType{kind: kindTimestampNTZ}, "timestamp without time zone", "2024-02-29 23:59:58.654321", "2024-02-29T23:59:58.654321000", ""},
		{colType{kind: kindTimestampNTZ}, "timestamp without time zone", "2024-02-29 23:59:58", "2024-02-29T23:59:58.000000000", ""},
		{colType{kind: kindTimestampNTZ}, "timestamp without time zone", "-infinity", "", "no Snowflake representation"},
		{colType{kind: kindTimestampNTZ}, "timestamp without time zone", "2024-02-29 23:59:58 BC", "", "before year 1"},
		{colType{kind: kindTimestampTZ}, "timestamp with time zone", "2024-02-29 23:59:58.5+02", "2024-02-29T23:59:58.500000000+02:00", ""},
		{colType{kind: kindTimestampTZ}, "timestamp with time zone", "2024-02-29 23:59:58-05:30", "2024-02-29T23:59:58.000000000-05:30", ""},
		// Local mean time offsets have seconds: the same instant in UTC.
		{colType{kind: kindTimestampTZ}, "timestamp with time zone", "1850-01-01 00:00:00+00:53:28", "1849-12-31T23:06:32.000000000+00:00", ""},
		{colType{kind: kindTimestampTZ}, "timestamp with time zone", "2024-02-29 23:59:58", "", "not a timestamp with a UTC offset"},
		{colType{kind: kindTimestampTZ}, "timestamp with time zone", "12024-02-29 23:59:58+00", "", "outside Snowflake's range"},
		{colType{kind: kindBinary}, "bytea", `\xDEADbeef`, "DEADbeef", ""},
		{colType{kind: kindBinary}, "bytea", `\x`, "", ""},
		{colType{kind: kindBinary}, "bytea", `\001abc`, "", "not in hex output format"},
		{colType{kind: kindBinary, length: 2}, "bytea", `\x010203`, "", "3 bytes; the BINARY column holds at most 2"},
		{colType{kind: kindText}, "text", "", "", ""},
		{colType{kind: kindText}, "text", "\xff", "", "not valid UTF-8"},
		{colType{kind: kindText, length: 3}, "text", "ééé", "ééé", ""},
		{colType{kind: kindText, length: 3}, "text", "éééé", "", "4 characters; the column is VARCHAR(3)"},
		{colType{kind: kindVariant, variant: "VARIANT"}, "jsonb", `{"a": 1.5}`, `{"a": 1.5}`, ""},
		{colType{kind: kindVariant, variant: "VARIANT"}, "json", `{"a": 1, "a": 2}`, "", `the key "a" twice`},
		{colType{kind: kindVariant, variant: "VARIANT"}, "json", `[{"a": 1}, {"a": 2}]`, `[{"a": 1}, {"a": 2}]`, ""},
		{colType{kind: kindVariant, variant: "VARIANT"}, "jsonb", `{"n": 123456789012345678901234567890123456789}`, "", "needs 39 digits"},
		{colType{kind: kindVariant, variant: "VARIANT"}, "jsonb", `{"n": 0.00000000000000000000000000000000000000012345}`, "", "44 after the point"},
		{colType{kind: kindVariant, variant: "VARIANT"}, "jsonb", `{"n": -0.1000000000000000000000000000000000000000}`, `{"n": -0.1000000000000000000000000000000000000000}`, ""},
		{colType{kind: kindVariant, variant: "VARIANT"}, "jsonb", `1e400`, "", "beyond the range"},
		{colType{kind: kindVariant, variant: "VARIANT"}, "jsonb", `{"s": "1234567890123456789012345678901234567890"}`, `{"s": "1234567890123456789012345678901234567890"}`, ""},
		{colType{kind: kindVariant, variant: "VARIANT"}, "jsonb", `{"a":`, "", "not valid JSON"},
		{colType{kind: kindVariant, variant: "VARIANT"}, "text", `plain "text"`, `"plain \"text\""`, ""},
		{colType{kind: kindVariant, variant: "VARIANT"}, "integer[]", `{1,-2,NULL}`, `[1,-2,null]`, ""},
	}
	for _, tt := range tests {
		got, err := encode(tt.typ, tt.base, tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("encode(%s, %s, %q): %v", tt.typ.sql(), tt.base, tt.in, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("encode(%s, %s, %q) = %q, %v; want error containing %q", tt.typ.sql(), tt.base, tt.in, got, err, tt.wantErr)
		case tt.wantErr == "" && got != tt.want:
			t.Errorf("encode(%s, %s, %q) = %q, want %q", tt.typ.sql(), tt.base, tt.in, got, tt.want)
		}
	}
}

func TestEncodeErrorsDoNotQuoteValues(t *testing.T) {
	t.Parallel()
	secret := "4111-1111-1111-1111"
	for _, typ := range []colType{
		{kind: kindNumber, precision: 10}, {kind: kindFloat}, {kind: kindBoolean}, {kind: kindDate}, {kind: kindTime},
		{kind: kindTimestampNTZ}, {kind: kindTimestampTZ}, {kind: kindBinary}, {kind: kindVariant, variant: "VARIANT"},
	} {
		if _, err := encode(typ, "jsonb", secret+"\xff"); err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("encode into %s: error %q quotes the value", typ.sql(), err)
		}
	}
}

func TestArrayToJSON(t *testing.T) {
	t.Parallel()
	tests := []struct{ elem, in, want, wantErr string }{
		{"integer", "{}", "[]", ""},
		{"integer", "{1,2,3}", "[1,2,3]", ""},
		{"integer", "{{1,2},{3,NULL}}", "[[1,2],[3,null]]", ""},
		{"text", `{a,"b c",NULL,"NULL","d\"e","f\\g",""}`, `["a","b c",null,"NULL","d\"e","f\\g",""]`, ""},
		{"text", `{"{x}",ünï}`, `["{x}","ünï"]`, ""},
		{"boolean", "{t,f,NULL}", "[true,false,null]", ""},
		{"double precision", "{1.5,-0,1e+30,NaN,Infinity}", `[1.5,-0,1e+30,"NaN","Infinity"]`, ""},
		{"numeric", "{1.10,12345678901234567890123456789012345678901}", `["1.10","12345678901234567890123456789012345678901"]`, ""},
		{"jsonb", `{"{\"a\": 1}","[1, 2]",NULL}`, `[{"a": 1},[1, 2],null]`, ""},
		{"box", "{(1,1),(0,0);(2,2),(1,1)}", `["(1,1),(0,0)","(2,2),(1,1)"]`, ""},
		{"timestamp with time zone", `{"2024-01-01 00:00:00+00"}`, `["2024-01-01 00:00:00+00"]`, ""},
		{"integer", "[0:1]={1,2}", "", "explicit bounds"},
		{"integer", "{1,x}", "", "not an integer"},
		{"integer", "{1,2", "", "unterminated"},
		{"integer", "{1,2}x", "", "trailing characters"},
		{"text", `{"a`, "", "unterminated quoted element"},
		{"json", `{"{\"a\": 1, \"a\": 2}"}`, "", "twice"},
	}
	for _, tt := range tests {
		got, err := arrayToJSON(tt.in, tt.elem)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("arrayToJSON(%q, %s): %v", tt.in, tt.elem, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("arrayToJSON(%q, %s) = %q, %v; want error containing %q", tt.in, tt.elem, got, err, tt.wantErr)
		case tt.wantErr == "" && got != tt.want:
			t.Errorf("arrayToJSON(%q, %s) = %s, want %s", tt.in, tt.elem, got, tt.want)
		}
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"orders": "ORDERS", "order lines": "ORDER LINES", "OrderLines": "OrderLines", "ID": "ID", "café": "CAFÉ", "a1_$": "A1_$",
	} {
		if got := destName(in); got != want {
			t.Errorf("destName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := ident(`a "b"`); got != `"a ""b"""` {
		t.Errorf("ident = %s", got)
	}
	if got := qualified("DB", "S", `t"`); got != `"DB"."S"."t"""` {
		t.Errorf("qualified = %s", got)
	}
	for _, tt := range []struct{ in, want, wantErr string }{
		{"analytics", "ANALYTICS", ""},
		{"Raw_Data$1", "RAW_DATA$1", ""},
		{`"My Schema"`, "My Schema", ""},
		{`"a""b"`, `a"b`, ""},
		{"my-db", "", `write it in double quotes, e.g. "\"my-db\""`},
		{`"a"b"`, "", "not a valid quoted identifier"},
		{`""`, "", "not a valid quoted identifier"},
		{"", "", "is empty"},
		{"1abc", "", "not a plain Snowflake identifier"},
	} {
		got, err := configName("schema", tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("configName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("configName(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
		}
	}
	for _, tt := range []struct{ name, wantErr string }{
		{"_rosetta_x", "Rosetta reserves"}, {"_ROSETTA_LSN", "Rosetta reserves"}, {"", "empty name"},
		{strings.Repeat("x", 250), "250 characters"}, {"_rosettax", ""},
	} {
		err := checkSourceName("column", tt.name)
		if (tt.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("checkSourceName(%q) = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}
