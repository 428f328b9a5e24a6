package pgrepl

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rosettacdc/rosetta/contracts"
)

// textValue turns PostgreSQL's text output of a value whose built-in type
// is oid into its JSON form (see contracts.Change); appendTextValue says
// how.
func textValue(m *pgtype.Map, oid uint32, text []byte) (json.RawMessage, error) {
	return appendTextValue(make([]byte, 0, len(text)+2), m, oid, text)
}

// appendTextValue appends the JSON form of PostgreSQL's text output of a
// value whose built-in type is oid: a number for int2/int4/int8, a boolean
// for bool, otherwise a string holding the text unchanged. Integers and
// booleans are decoded through pgx's type map so that what reaches JSON is
// what PostgreSQL meant, not a re-spelling.
func appendTextValue(dst []byte, m *pgtype.Map, oid uint32, text []byte) ([]byte, error) {
	// Fast paths for what PostgreSQL prints (canonical decimal integers,
	// t/f): the same result as pgx's codecs below, without their
	// allocations. Anything else goes through pgx, which decides.
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		bits := 64
		if oid == pgtype.Int2OID {
			bits = 16
		} else if oid == pgtype.Int4OID {
			bits = 32
		}
		if v, err := strconv.ParseInt(string(text), 10, bits); err == nil {
			return strconv.AppendInt(dst, v, 10), nil
		}
	case pgtype.BoolOID:
		if len(text) == 1 && (text[0] == 't' || text[0] == 'f') {
			return strconv.AppendBool(dst, text[0] == 't'), nil
		}
	default:
		return contracts.AppendJSONString(dst, text), nil
	}
	t, ok := m.TypeForOID(oid)
	if !ok {
		return nil, fmt.Errorf("type %d missing from pgx's type map", oid)
	}
	v, err := t.Codec.DecodeValue(m, oid, pgtype.TextFormatCode, text)
	if err != nil {
		return nil, fmt.Errorf("decode %q: %w", text, err)
	}
	switch v := v.(type) {
	case int16:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	default:
		return nil, fmt.Errorf("decode %q: unexpected %T", text, v)
	}
}
