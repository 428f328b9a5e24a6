package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// MaxFilters is the most filters one backfill may have.
const MaxFilters = 5

// maxInValues bounds the list of an in / not in filter.
const maxInValues = 1000

// Filter is one condition on the rows read: Column Op Value. Value is JSON:
// a string, number or boolean for =, !=, <, <=, >, >= and like (a string);
// a non-empty array of those for in and not in; absent or null for is null
// and is not null. Values are bound as parameters and cast to the column's
// type by PostgreSQL, never put into the SQL text.
type Filter struct {
	Column string          `json:"column"`
	Op     string          `json:"op"`
	Value  json.RawMessage `json:"value,omitempty"`
}

// FilterError says which filter is wrong and why.
type FilterError struct {
	Index int // 0-based; -1 for the list as a whole
	Msg   string
}

func (e *FilterError) Error() string {
	if e.Index < 0 {
		return e.Msg
	}
	return fmt.Sprintf("filters[%d]: %s", e.Index, e.Msg)
}

// Field is the JSON path of the filter at fault.
func (e *FilterError) Field() string {
	if e.Index < 0 {
		return "filters"
	}
	return "filters[" + strconv.Itoa(e.Index) + "]"
}

var comparisonOps = map[string]string{"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

// ValidateFilters checks filters against t's columns; the error is a
// *FilterError.
func ValidateFilters(t Table, filters []Filter) error {
	if len(filters) > MaxFilters {
		return &FilterError{Index: -1, Msg: fmt.Sprintf("at most %d filters are allowed, got %d", MaxFilters, len(filters))}
	}
	for i, f := range filters {
		if _, err := filterSQL(t, f, new(params)); err != nil {
			return &FilterError{Index: i, Msg: err.Error()}
		}
	}
	return nil
}

// params collects bound parameters in text format.
type params struct{ vals [][]byte }

func (p *params) add(v string) string {
	p.vals = append(p.vals, []byte(v))
	return "$" + strconv.Itoa(len(p.vals))
}

// cast is a bound text parameter converted to the column's type by
// PostgreSQL (the type name comes from the catalog, not the request).
func (p *params) cast(v string, c Column) string {
	return "CAST(" + p.add(v) + "::text AS " + c.Type + ")"
}

func filterSQL(t Table, f Filter, p *params) (string, error) {
	if f.Column == "" {
		return "", fmt.Errorf("column is required")
	}
	col, ok := t.Column(f.Column)
	if !ok {
		return "", fmt.Errorf("column %q does not exist in %s.%s (or is not replicated)", f.Column, t.Schema, t.Name)
	}
	op := strings.ToLower(strings.Join(strings.Fields(f.Op), " "))
	ident := Quote(col.Name)
	hasValue := len(bytes.TrimSpace(f.Value)) > 0 && string(bytes.TrimSpace(f.Value)) != "null"
	switch op {
	case "is null", "is not null":
		if hasValue {
			return "", fmt.Errorf("op %q takes no value", op)
		}
		return ident + " " + strings.ToUpper(op), nil
	case "in", "not in":
		var list []json.RawMessage
		if err := json.Unmarshal(f.Value, &list); err != nil || len(list) == 0 {
			return "", fmt.Errorf("op %q needs a non-empty array value", op)
		}
		if len(list) > maxInValues {
			return "", fmt.Errorf("op %q takes at most %d values, got %d", op, maxInValues, len(list))
		}
		items := make([]string, len(list))
		for i, raw := range list {
			v, err := scalarText(raw)
			if err != nil {
				return "", fmt.Errorf("value[%d]: %w", i, err)
			}
			items[i] = p.cast(v, col)
		}
		return ident + " " + strings.ToUpper(op) + " (" + strings.Join(items, ", ") + ")", nil
	case "like":
		if !hasValue {
			return "", fmt.Errorf("op \"like\" needs a string value")
		}
		var s string
		if err := json.Unmarshal(f.Value, &s); err != nil {
			return "", fmt.Errorf("op \"like\" needs a string value")
		}
		return "CAST(" + ident + " AS text) LIKE " + p.add(s) + "::text", nil
	}
	sqlOp, ok := comparisonOps[op]
	if !ok {
		return "", fmt.Errorf("op %q is not one of =, !=, <, <=, >, >=, in, not in, is null, is not null, like", f.Op)
	}
	if !hasValue {
		return "", fmt.Errorf("op %q needs a value (use \"is null\" for NULL)", op)
	}
	v, err := scalarText(f.Value)
	if err != nil {
		return "", err
	}
	return ident + " " + sqlOp + " " + p.cast(v, col), nil
}

// scalarText is the text form of a JSON string, number or boolean.
func scalarText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", fmt.Errorf("value is required")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("value: %w", err)
		}
		return s, nil
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return "", fmt.Errorf("value: %w", err)
		}
		return strconv.FormatBool(b), nil
	case 'n':
		return "", fmt.Errorf("value must not be null (use \"is null\")")
	case '[', '{':
		return "", fmt.Errorf("value must be a string, number or boolean")
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("value must be a string, number or boolean")
	}
	return n.String(), nil
}

// BatchQuery is the SQL reading one batch: the rows matching filters whose
// primary key is after lastKey (text values; nil starts at the first row),
// in primary key order, at most limit rows. Every column is selected in
// attribute order; values are bound.
func BatchQuery(t Table, filters []Filter, lastKey []string, limit int) (string, [][]byte, error) {
	p := new(params)
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = Quote(c.Name)
	}
	var where []string
	for i, f := range filters {
		s, err := filterSQL(t, f, p)
		if err != nil {
			return "", nil, &FilterError{Index: i, Msg: err.Error()}
		}
		where = append(where, s)
	}
	keyCols := make([]string, len(t.Key))
	for i, k := range t.Key {
		keyCols[i] = Quote(t.Columns[k].Name)
	}
	if lastKey != nil {
		if len(lastKey) != len(t.Key) {
			return "", nil, fmt.Errorf("resume key has %d values, %s.%s's primary key %d columns", len(lastKey), t.Schema, t.Name, len(t.Key))
		}
		vals := make([]string, len(t.Key))
		for i, k := range t.Key {
			vals[i] = p.cast(lastKey[i], t.Columns[k])
		}
		where = append(where, "("+strings.Join(keyCols, ", ")+") > ("+strings.Join(vals, ", ")+")")
	}
	var b strings.Builder
	b.WriteString("SELECT " + strings.Join(cols, ", ") + " FROM " + Quote(t.Schema, t.Name))
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	b.WriteString(" ORDER BY " + strings.Join(keyCols, ", ") + " LIMIT " + strconv.Itoa(limit))
	return b.String(), p.vals, nil
}

// CountQuery counts the rows matching filters (for a progress total).
func CountQuery(t Table, filters []Filter) (string, [][]byte, error) {
	p := new(params)
	var where []string
	for i, f := range filters {
		s, err := filterSQL(t, f, p)
		if err != nil {
			return "", nil, &FilterError{Index: i, Msg: err.Error()}
		}
		where = append(where, s)
	}
	q := "SELECT count(*) FROM " + Quote(t.Schema, t.Name)
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q, p.vals, nil
}
