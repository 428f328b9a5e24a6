package fakesnowflake

import (
	"fmt"
	"strconv"
)

// duckDBMaxDecimalPrecision is the widest DECIMAL DuckDB stores; Snowflake's NUMBER
// also tops out at 38 digits, so nothing is lost.
const duckDBMaxDecimalPrecision = 38

// errUnsupported marks SQL the fake deliberately does not emulate. It is reported to
// the client with a message naming the construct, so a test fails loudly instead of
// running something subtly different from Snowflake.
type errUnsupported struct{ what string }

func (e *errUnsupported) Error() string {
	return "fakesnowflake does not support " + e.what
}

func unsupported(format string, args ...any) error {
	return &errUnsupported{what: fmt.Sprintf(format, args...)}
}

// functionRenames maps Snowflake function names to DuckDB equivalents with the same
// argument order.
var functionRenames = map[string]string{
	"IFF":              "IF",
	"NVL":              "COALESCE",
	"PARSE_JSON":       "JSON",
	"OBJECT_CONSTRUCT": "JSON_OBJECT",
	"ARRAY_CONSTRUCT":  "JSON_ARRAY",
	"SYSDATE":          "CURRENT_TIMESTAMP",
}

// word returns a synthetic unquoted-word token preceded by a space.
func word(w string) token { return token{kind: tkWord, text: w, val: w, sp: true} }

// punct returns a synthetic punctuation token.
func punct(p string, sp bool) token { return token{kind: tkPunct, text: p, sp: sp} }

// rewriteType reads a Snowflake data type starting at toks[i] and returns the DuckDB
// tokens for it and the index after the type.
func rewriteType(toks []token, i int) ([]token, int, error) {
	if i >= len(toks) || toks[i].kind != tkWord {
		return nil, i, fmt.Errorf("expected a data type at %q", tokText(toks, i))
	}
	start := i
	name := toks[i].val
	sp := toks[i].sp
	i++
	// Two-word spellings.
	if i < len(toks) && toks[i].kind == tkWord {
		switch {
		case name == "DOUBLE" && toks[i].val == "PRECISION",
			(name == "CHAR" || name == "CHARACTER" || name == "NCHAR") && toks[i].val == "VARYING":
			i++
		}
	}
	var args []string
	if i < len(toks) && toks[i].isPunct("(") {
		end := matchingParen(toks, i)
		if end < 0 {
			return nil, i, fmt.Errorf("unbalanced parentheses in type %s", name)
		}
		for _, t := range toks[i+1 : end] {
			if t.kind == tkNumber || t.kind == tkWord {
				args = append(args, t.text)
			}
		}
		i = end + 1
	}
	out := func(s string) ([]token, int, error) {
		t := word(s)
		t.sp = sp
		return []token{t}, i, nil
	}
	switch name {
	case "NUMBER", "NUMERIC", "DECIMAL", "DEC":
		p, s := duckDBMaxDecimalPrecision, 0
		if len(args) > 0 {
			v, err := strconv.Atoi(args[0])
			if err != nil {
				return nil, i, fmt.Errorf("precision of %s: %w", name, err)
			}
			p = min(v, duckDBMaxDecimalPrecision)
		}
		if len(args) > 1 {
			v, err := strconv.Atoi(args[1])
			if err != nil {
				return nil, i, fmt.Errorf("scale of %s: %w", name, err)
			}
			s = v
		}
		return out(fmt.Sprintf("DECIMAL(%d,%d)", p, s))
	case "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT":
		// Snowflake integer types are all NUMBER(38,0).
		return out("DECIMAL(38,0)")
	case "FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "REAL":
		return out("DOUBLE")
	case "VARCHAR", "STRING", "TEXT", "CHAR", "CHARACTER", "NCHAR", "NVARCHAR", "NVARCHAR2":
		return out("VARCHAR")
	case "BINARY", "VARBINARY":
		return out("BLOB")
	case "BOOLEAN", "BOOL":
		return out("BOOLEAN")
	case "DATE":
		return out("DATE")
	case "TIME":
		return out("TIME")
	case "DATETIME", "TIMESTAMP", "TIMESTAMP_NTZ":
		// TIMESTAMP means TIMESTAMP_NTZ under Snowflake's default TIMESTAMP_TYPE_MAPPING.
		return out("TIMESTAMP")
	case "TIMESTAMP_LTZ", "TIMESTAMP_TZ":
		return out("TIMESTAMPTZ")
	case "VARIANT", "OBJECT", "ARRAY":
		return out("JSON")
	case "GEOGRAPHY", "GEOMETRY", "VECTOR", "DECFLOAT", "FILE":
		return nil, i, unsupported("the %s data type", name)
	}
	// Not a Snowflake type name we know: pass it through and let DuckDB decide.
	return toks[start:i], i, nil
}

// tokText renders toks[i] for error messages.
func tokText(toks []token, i int) string {
	if i >= len(toks) {
		return "end of statement"
	}
	return toks[i].text
}

// rewriteExpressions rewrites the type names in casts (x::T, CAST(x AS T),
// TRY_CAST(x AS T)) and renames Snowflake-only functions.
func rewriteExpressions(toks []token) ([]token, error) {
	out := make([]token, 0, len(toks))
	var castStack []bool // one entry per open parenthesis: is it a CAST( ?
	for i := 0; i < len(toks); {
		t := toks[i]
		switch {
		case t.isPunct("::"):
			out = append(out, t)
			typ, next, err := rewriteType(toks, i+1)
			if err != nil {
				return nil, err
			}
			typ[0].sp = false
			out = append(out, typ...)
			i = next
			continue
		case t.isPunct("("):
			isCast := len(out) > 0 && (out[len(out)-1].isWord("CAST") || out[len(out)-1].isWord("TRY_CAST"))
			castStack = append(castStack, isCast)
		case t.isPunct(")"):
			if len(castStack) > 0 {
				castStack = castStack[:len(castStack)-1]
			}
		case t.isWord("AS") && len(castStack) > 0 && castStack[len(castStack)-1]:
			out = append(out, t)
			typ, next, err := rewriteType(toks, i+1)
			if err != nil {
				return nil, err
			}
			out = append(out, typ...)
			i = next
			continue
		case t.kind == tkWord && i+1 < len(toks) && toks[i+1].isPunct("("):
			if to, ok := functionRenames[t.val]; ok {
				t.val = to
			}
		}
		out = append(out, t)
		i++
	}
	return out, nil
}

// constraintStarts begin table-level constraints. Snowflake accepts PRIMARY KEY,
// UNIQUE and FOREIGN KEY but enforces only NOT NULL, so the fake drops them rather
// than let DuckDB reject duplicates Snowflake would store. A primary key's
// columns become NOT NULL, as Snowflake makes them.
var constraintStarts = map[string]bool{"PRIMARY": true, "UNIQUE": true, "FOREIGN": true, "CONSTRAINT": true}

// rewriteColumnDefs rewrites one CREATE TABLE element list (the tokens between the
// outer parentheses) and returns it without table-level constraints.
func rewriteColumnDefs(toks []token) ([]token, error) {
	elems := splitTopLevel(toks)
	pk := map[string]bool{}
	for _, elem := range elems {
		for i := 0; i+2 < len(elem); i++ {
			if elem[0].kind == tkWord && constraintStarts[elem[0].val] && elem[i].isWord("PRIMARY") &&
				elem[i+1].isWord("KEY") && elem[i+2].isPunct("(") {
				for _, c := range elem[i+3:] {
					if c.isIdent() {
						pk[c.val] = true
					}
				}
				break
			}
		}
	}
	var out []token
	for _, elem := range elems {
		if len(elem) == 0 {
			continue
		}
		if constraintStarts[elem[0].val] && elem[0].kind == tkWord {
			continue // table-level PRIMARY KEY / UNIQUE / FOREIGN KEY: not enforced by Snowflake
		}
		def, err := rewriteColumnDef(elem, pk[elem[0].val])
		if err != nil {
			return nil, err
		}
		if len(out) > 0 {
			out = append(out, punct(",", false))
		}
		out = append(out, def...)
	}
	return out, nil
}

// rewriteColumnDef rewrites "name TYPE [options]"; inKey: a table-level
// primary key lists the column, which makes it NOT NULL.
func rewriteColumnDef(elem []token, inKey bool) ([]token, error) {
	if !elem[0].isIdent() {
		return nil, fmt.Errorf("expected a column name at %q", elem[0].text)
	}
	out := []token{elem[0]}
	if len(elem) == 1 {
		return out, nil // CTAS column list: names only
	}
	typ, i, err := rewriteType(elem, 1)
	if err != nil {
		return nil, fmt.Errorf("column %s: %w", elem[0].val, err)
	}
	out = append(out, typ...)
	var tail []token
	notNull := false
	for i < len(elem) {
		t := elem[i]
		if t.isWord("NOT") && i+1 < len(elem) && elem[i+1].isWord("NULL") {
			notNull = true
		}
		if t.isWord("PRIMARY") {
			inKey = true
		}
		switch {
		case t.isWord("PRIMARY") || t.isWord("UNIQUE") || t.isWord("ENFORCED") || t.isWord("RELY") ||
			t.isWord("NORELY") || t.isWord("VALIDATE") || t.isWord("NOVALIDATE"):
			i++
			if i < len(elem) && elem[i].isWord("KEY") {
				i++
			}
		case t.isWord("NOT") && i+1 < len(elem) && elem[i+1].isWord("ENFORCED"):
			i += 2
		case t.isWord("CONSTRAINT") && i+1 < len(elem):
			i += 2 // the constraint's name; the constraint itself is handled next
		case t.isWord("REFERENCES"):
			_, next, _ := readQualifiedName(elem, i+1)
			i = next
			if i < len(elem) && elem[i].isPunct("(") {
				i = matchingParen(elem, i) + 1
			}
		case t.isWord("COLLATE") || t.isWord("COMMENT"):
			i += 2
		case t.isWord("AUTOINCREMENT") || t.isWord("IDENTITY"):
			return nil, unsupported("AUTOINCREMENT/IDENTITY columns")
		case t.isWord("WITH") || t.isWord("MASKING") || t.isWord("TAG") || t.isWord("PROJECTION"):
			return nil, unsupported("column policies and tags")
		default:
			tail = append(tail, t) // NOT NULL, NULL, DEFAULT <expr>
			i++
		}
	}
	if inKey && !notNull {
		tail = append(tail, word("NOT"), word("NULL"))
	}
	tail, err = rewriteExpressions(tail) // DEFAULT expressions may contain casts
	if err != nil {
		return nil, err
	}
	return append(out, tail...), nil
}

// splitTopLevel splits tokens at commas that are not nested in parentheses.
func splitTopLevel(toks []token) [][]token {
	var parts [][]token
	depth, start := 0, 0
	for i, t := range toks {
		switch {
		case t.isPunct("("):
			depth++
		case t.isPunct(")"):
			depth--
		case t.isPunct(",") && depth == 0:
			parts = append(parts, toks[start:i])
			start = i + 1
		}
	}
	return append(parts, toks[start:])
}
