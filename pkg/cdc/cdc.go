// Package cdc is the pure core of the sink side: it turns the change events of
// one fetched batch (contracts.Change) into the per-table, per-key final
// states a destination driver applies in one transaction. It does no I/O.
//
// Collapsing is what lets a driver apply a batch with a handful of set-based
// statements: after Collapse every key of a table appears at most once, with
// the newest version seen in the batch. Drivers still guard every write with
// that version, because the same change can arrive again in a later batch
// (at-least-once delivery) and must then change nothing.
package cdc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rosettacdc/rosetta/contracts"
)

// TableRef names a source table.
type TableRef struct {
	Schema string
	Table  string
}

// String is schema.table, for logs and errors (not for SQL).
func (t TableRef) String() string { return t.Schema + "." + t.Table }

// Value is one column value in PostgreSQL's text form, ready to be sent
// through COPY or bound as text.
type Value struct {
	Text string
	Null bool
}

// ValueFromJSON converts an envelope value to its PostgreSQL text form: a
// JSON string becomes its content, a number its literal, a boolean
// "true"/"false", null (or an absent value) SQL NULL. Objects and arrays,
// which the contract does not produce, are kept as their JSON text.
func ValueFromJSON(raw json.RawMessage) (Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return Value{Null: true}, nil
	}
	switch raw[0] {
	case 'n':
		if string(raw) == "null" {
			return Value{Null: true}, nil
		}
	case '"':
		// Most strings need no unescaping: their content is the text.
		// The result is what json.Unmarshal gives, without its cost.
		if s, ok := plainString(raw); ok {
			return Value{Text: s}, nil
		}
		if s, ok := unescapeSimple(raw); ok {
			return Value{Text: s}, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Value{}, fmt.Errorf("decode json string value: %w", err)
		}
		return Value{Text: s}, nil
	case 't':
		if string(raw) == "true" {
			return Value{Text: "true"}, nil
		}
	case 'f':
		if string(raw) == "false" {
			return Value{Text: "false"}, nil
		}
	case '{', '[':
		if !json.Valid(raw) {
			return Value{}, fmt.Errorf("decode json value %.40q: invalid json", raw)
		}
		return Value{Text: string(raw)}, nil
	default:
		if raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9' {
			if validNumber(raw) {
				return Value{Text: string(raw)}, nil
			}
			var n json.Number
			if err := json.Unmarshal(raw, &n); err != nil {
				return Value{}, fmt.Errorf("decode json number value: %w", err)
			}
			return Value{Text: n.String()}, nil
		}
	}
	return Value{}, fmt.Errorf("decode json value %.40q: not a json value", raw)
}

// plainString returns the content of a JSON string literal that has no
// escapes, no control characters and only valid UTF-8: exactly what
// json.Unmarshal would return for it. ok is false for anything else.
func plainString(raw []byte) (string, bool) {
	in, ok := plainContent(raw)
	if !ok {
		return "", false
	}
	return string(in), true
}

// plainContent is plainString's content as a slice of raw.
func plainContent(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return nil, false
	}
	in := raw[1 : len(raw)-1]
	ascii := true
	for _, c := range in {
		if c < 0x20 || c == '"' || c == '\\' {
			return nil, false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(in) {
		return nil, false // json.Unmarshal replaces invalid bytes with U+FFFD
	}
	return in, true
}

// simpleEscaped reports whether unescapeSimple decodes raw, without
// decoding it. The escapes it takes are ASCII, so the input is valid UTF-8
// exactly when the output is.
func simpleEscaped(raw []byte) bool {
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return false
	}
	in := raw[1 : len(raw)-1]
	ascii := true
	for i := 0; i < len(in); i++ {
		switch c := in[i]; {
		case c == '\\':
			i++
			if i == len(in) {
				return false
			}
			switch in[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			default:
				return false
			}
		case c < 0x20 || c == '"':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.Valid(in)
}

// checkValue returns the error ValueFromJSON returns for raw, without
// building the value when there is none.
func checkValue(raw json.RawMessage) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return nil
	}
	switch c := t[0]; {
	case c == '"':
		if _, ok := plainContent(t); ok || simpleEscaped(t) {
			return nil
		}
	case c == '-' || c >= '0' && c <= '9':
		if validNumber(t) {
			return nil
		}
	case string(t) == "null" || string(t) == "true" || string(t) == "false":
		return nil
	}
	_, err := ValueFromJSON(raw)
	return err
}

// sharedValue is ValueFromJSON of a value Check accepted, except that a
// string without escapes, or a number, is not copied: its Text is raw's
// bytes (see Collapse).
func sharedValue(raw json.RawMessage) Value {
	t := bytes.TrimSpace(raw)
	if len(t) > 0 {
		switch c := t[0]; {
		case c == '"':
			if in, ok := plainContent(t); ok {
				return Value{Text: alias(in)}
			}
		case c == '-' || c >= '0' && c <= '9':
			if validNumber(t) {
				return Value{Text: alias(t)}
			}
		}
	}
	v, _ := ValueFromJSON(raw)
	return v
}

// unescapeSimple decodes a JSON string literal whose escapes are all of
// the one-character kind (\" \\ \/ \b \f \n \r \t) and whose other bytes are
// valid UTF-8 without control characters: exactly what json.Unmarshal
// returns for it (jsonb and json values are full of \"). ok is false for
// \u escapes and anything else.
func unescapeSimple(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	out := make([]byte, 0, len(in))
	ascii := true
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch {
		case c == '\\':
			i++
			if i == len(in) {
				return "", false
			}
			switch in[i] {
			case '"', '\\', '/':
				out = append(out, in[i])
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			default:
				return "", false
			}
		case c < 0x20 || c == '"':
			return "", false
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			out = append(out, c)
		}
	}
	if !ascii && !utf8.Valid(out) {
		return "", false
	}
	return alias(out), true // out is ours alone: never written again
}

// validNumber reports whether raw is a JSON number literal (RFC 8259:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?).
func validNumber(raw []byte) bool {
	i := 0
	if i < len(raw) && raw[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(raw) && raw[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(raw) && raw[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(raw)
}

// RowChange is the final state of one key of a table after a batch.
type RowChange struct {
	// Delete is true when the key's final state is "absent".
	Delete bool
	// Key holds the key columns' values in TableBatch.KeyColumns order.
	Key []Value
	// Values holds the row's columns for an upsert. A column of
	// TableBatch.Columns absent from both Values and Unchanged is NULL.
	// A change written before a column was added (it does not list the
	// column, a newer change of the batch does) gets the column's
	// ExistingValue here, which is the row's value at the source.
	Values map[string]Value
	// Unchanged lists columns whose value the destination must keep from
	// the row it already stores (unchanged TOASTed values PostgreSQL did
	// not send): from the row at FallbackKey for Moved columns, else from
	// the row at Key.
	Unchanged []string
	// FallbackKey is set when the key changed within the batch (or the
	// change itself was an update of the key) and left columns unchanged
	// (Moved): the old key, whose stored row before the batch may hold
	// their values.
	FallbackKey []Value
	// Version is the version of the newest change folded into this state.
	Version contracts.Version
	// ColVersions holds, for the columns of Values that an older change of
	// the batch provided (a newer one left them unchanged), that change's
	// version. Nil when every value is the state's own: full changes, the
	// common case. Drivers store per-column versions from it so that a
	// late older change fills exactly what it alone knows
	// (services/sink/drivers/internal/guard).
	ColVersions map[string]contracts.Version
	// Moved holds the columns a key change (folded into this state) left
	// unchanged: their value comes from the row at FallbackKey, as the
	// batch holds it (Values, when it has one) or as the destination
	// stores it, whichever is newer but older than the move. Nil unless
	// the key changed.
	Moved map[string]MovedColumn
	// Floor is the version of a delete of the key folded into this upsert
	// (deleted, then re-created within the batch): no change older than it
	// may fill the row. Nil when the batch did not delete the key first.
	Floor *contracts.Version
}

// MovedColumn is a column a key change left unchanged.
type MovedColumn struct {
	// Version is the version of the value RowChange.Values holds for the
	// column (taken from the old key's earlier state in the batch); zero
	// when Values has none.
	Version contracts.Version
	// Move is the version of the key change: a value stored at the old
	// key is the one to take only if it is older than Move and newer than
	// Version.
	Move contracts.Version
	// From is the old key. Columns of one state may come from different
	// old keys when the batch moved the row twice.
	From []Value
}

// colVersion is the version of the value r holds for col.
func (r *RowChange) colVersion(col string) contracts.Version {
	if v, ok := r.ColVersions[col]; ok {
		return v
	}
	return r.Version
}

// setColVersion records a column version that differs from r's own.
func (r *RowChange) setColVersion(col string, v contracts.Version) {
	if v == r.Version {
		return
	}
	if r.ColVersions == nil {
		r.ColVersions = map[string]contracts.Version{}
	}
	r.ColVersions[col] = v
}

func (r *RowChange) setMoved(col string, m MovedColumn) {
	if r.Moved == nil {
		r.Moved = map[string]MovedColumn{}
	}
	r.Moved[col] = m
}

// TableBatch is everything one batch does to one table.
type TableBatch struct {
	Table TableRef
	// Columns is the union of the columns seen in the batch, each as last
	// seen, in the order of the newest change that lists them (columns only
	// seen in older changes follow).
	Columns []contracts.Column
	// Dropped names the columns of Columns that the newest change listing
	// columns lacks: they were dropped (or renamed) at the source within
	// the batch. Nil when that change lists every column. Drivers treat
	// the newest list as the table's schema (Without).
	Dropped []string
	// Truncate is the version of the newest truncate in the batch. A
	// driver applies it before Rows: Rows only holds changes that came
	// after it.
	Truncate *contracts.Version
	// Rows holds one final state per key, in the order the keys first
	// appeared in the batch.
	Rows []RowChange
}

// KeyColumns names the key columns in the order Columns lists them; the
// order of RowChange.Key and RowChange.FallbackKey.
func (b TableBatch) KeyColumns() []string {
	var ks []string
	for _, c := range b.Columns {
		if c.Key {
			ks = append(ks, c.Name)
		}
	}
	return ks
}

// Check validates one change on its own, so that a consumer can set aside a
// malformed message before collapsing a batch: a known op, a parseable
// version, a table, a key for row changes and a row for inserts/updates.
// Collapse never fails on a batch of checked changes.
func Check(c *contracts.Change) error {
	if !c.Op.Valid() {
		return fmt.Errorf("unknown op %q", c.Op)
	}
	if _, err := c.Version(); err != nil {
		return err
	}
	if c.Source.Table == "" {
		return fmt.Errorf("change without source table")
	}
	for _, col := range c.Columns {
		if col.ExistingValue != "" {
			if _, err := ValueFromJSON(json.RawMessage(col.ExistingValue)); err != nil {
				return fmt.Errorf("column %s existing value: %w", col.Name, err)
			}
		}
	}
	if c.Op == contracts.OpTruncate {
		return nil
	}
	if len(c.Key) == 0 {
		return fmt.Errorf("%s change of %s.%s without key", c.Op, c.Source.Schema, c.Source.Table)
	}
	if c.Op != contracts.OpDelete && c.After == nil {
		return fmt.Errorf("%s change of %s.%s without after", c.Op, c.Source.Schema, c.Source.Table)
	}
	for _, raw := range []contracts.Row{c.Key, c.Before, c.After} {
		for col, v := range raw {
			if err := checkValue(v); err != nil {
				return fmt.Errorf("column %s: %w", col, err)
			}
		}
	}
	return nil
}

// Decode parses and checks one message body. The change does not refer to
// data (see Decoder for one that does, with fewer allocations).
func Decode(data []byte) (contracts.Change, error) {
	return decode(data, nil)
}

func decode(data []byte, d *Decoder) (contracts.Change, error) {
	// decodeFast reads what capture writes several times faster than
	// json.Unmarshal, with the same result; anything else goes through
	// json.Unmarshal.
	c, ok := decodeFast(data, d)
	if !ok {
		// A variable of its own: one passed to json.Unmarshal lives on
		// the heap, and only this path needs to pay for that.
		var u contracts.Change
		if err := json.Unmarshal(data, &u); err != nil {
			return contracts.Change{}, fmt.Errorf("decode change: %w", err)
		}
		c = u
	}
	if err := Check(&c); err != nil {
		return contracts.Change{}, fmt.Errorf("check change: %w", err)
	}
	return c, nil
}

// Collapse folds changes, in message order, into one TableBatch per table
// (in the order tables first appear) holding one final state per key:
//
//   - insert, update, snapshot read: the key's state becomes an upsert of
//     the row; columns the change lists as Unchanged take the value of the
//     key's earlier state in the batch when it has one (or the old row in
//     Before under REPLICA IDENTITY FULL), and otherwise stay Unchanged.
//   - update that changes the key (Before holds a different key): the old
//     key's state becomes a delete and the new key an upsert whose
//     FallbackKey points at the old key for columns still Unchanged.
//   - delete: the key's state becomes a delete.
//   - truncate: every earlier state of the table is dropped and the batch
//     records the truncate's version; later changes apply after it.
//
// It fails only on changes Check rejects, or when a change lacks a value
// for a key column of its table.
//
// The batches share memory with the changes: a Value's Text may be the
// bytes of the change's raw value (a string without escapes, a number),
// not a copy. Do not modify the changes' raw values while the batches are
// in use.
//
// Changes are taken in version order (commit LSN, then position in the
// transaction), not in the order given: JetStream redelivers a message
// that was not acked (a sink killed mid-batch, an expired ack wait) after
// newer ones, so one fetched batch can hold an older change behind a newer
// change of the same key. Collapsing in message order would keep the older
// one and ack the newer one unapplied.
func Collapse(changes []contracts.Change) ([]TableBatch, error) {
	changes, err := inVersionOrder(changes)
	if err != nil {
		return nil, err
	}
	var (
		order  []TableRef
		tables = map[TableRef]*tableState{}
	)
	// First pass: the column set per table, so that every change of a
	// table is keyed by the same key columns (those of the newest change).
	for i := range changes {
		c := &changes[i]
		ref := TableRef{Schema: c.Source.Schema, Table: c.Source.Table}
		ts, ok := tables[ref]
		if !ok {
			ts = &tableState{ref: ref, rows: map[keyID]int{}}
			tables[ref] = ts
			order = append(order, ref)
		}
		ts.seeColumns(c.Columns)
	}
	for _, ts := range tables {
		ts.finishColumns(changes)
	}
	for i := range changes {
		c := &changes[i]
		if err := Check(c); err != nil {
			return nil, fmt.Errorf("collapse change %d: %w", i, err)
		}
		ts := tables[TableRef{Schema: c.Source.Schema, Table: c.Source.Table}]
		if err := ts.apply(c); err != nil {
			return nil, fmt.Errorf("collapse change %d of %s: %w", i, ts.ref, err)
		}
	}
	out := make([]TableBatch, 0, len(order))
	for _, ref := range order {
		out = append(out, tables[ref].batch())
	}
	return out, nil
}

// inVersionOrder returns changes sorted by version, stably, each change
// of a table once (the input is returned as is when already strictly
// ordered, and never modified: callers map changes back to messages by
// index).
func inVersionOrder(changes []contracts.Change) ([]contracts.Change, error) {
	versions := make([]contracts.Version, len(changes))
	ordered := true
	for i := range changes {
		v, err := changes[i].Version()
		if err != nil {
			return nil, fmt.Errorf("collapse change %d: %w", i, err)
		}
		versions[i] = v
		// Equal versions mean a copy (or, across tables, one statement
		// such as a multi-table TRUNCATE): the slow path sorts them out.
		if i > 0 && !versions[i-1].Less(v) {
			ordered = false
		}
	}
	if ordered {
		return changes, nil
	}
	idx := make([]int, len(changes))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return versions[idx[a]].Less(versions[idx[b]]) })
	// A change delivered twice in one batch (a redelivery fetched with
	// its original, a re-publish after the duplicate window) is folded
	// once. Folding the copy again is not harmless: a key change's copy
	// finds its old key already moved away and would replace the moved
	// row's state with one that lacks the unchanged columns.
	type seenKey struct {
		schema, table string
		v             contracts.Version
	}
	seen := make(map[seenKey]bool, len(changes))
	out := make([]contracts.Change, 0, len(changes))
	for _, j := range idx {
		c := &changes[j]
		k := seenKey{c.Source.Schema, c.Source.Table, versions[j]}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, *c)
	}
	return out, nil
}

type tableState struct {
	ref     TableRef
	columns []contracts.Column // newest change's columns first
	newest  []contracts.Column // the newest change's own list
	// fills are the newest list's columns with an ExistingValue: rows of
	// older changes that do not list them take that value.
	fills    []contracts.Column
	keyCols  []string
	truncate *contracts.Version
	states   []RowChange
	rows     map[keyID]int // key identity -> index in states
}

// seeColumns is called in message order; newer lists win.
func (ts *tableState) seeColumns(cols []contracts.Column) {
	if len(cols) == 0 || slices.Equal(cols, ts.newest) {
		// The same list again (most changes of a batch): merging it
		// changes nothing.
		return
	}
	ts.newest = cols
	merged := make([]contracts.Column, 0, len(cols)+len(ts.columns))
	seen := make(map[string]bool, len(cols))
	for _, c := range cols {
		if !seen[c.Name] {
			seen[c.Name] = true
			merged = append(merged, c)
		}
	}
	for _, c := range ts.columns {
		if !seen[c.Name] {
			seen[c.Name] = true
			c.Key = false // the newest change decides the key
			merged = append(merged, c)
		}
	}
	ts.columns = merged
}

// finishColumns settles the key columns. Without column descriptions (a
// producer that omits them) the key is the sorted names of the first
// change's Key.
func (ts *tableState) finishColumns(changes []contracts.Change) {
	for _, c := range ts.newest {
		if c.ExistingValue != "" {
			ts.fills = append(ts.fills, c)
		}
	}
	for _, c := range ts.columns {
		if c.Key {
			ts.keyCols = append(ts.keyCols, c.Name)
		}
	}
	if len(ts.keyCols) > 0 {
		return
	}
	for i := range changes {
		c := &changes[i]
		if c.Source.Schema != ts.ref.Schema || c.Source.Table != ts.ref.Table || len(c.Key) == 0 {
			continue
		}
		for name := range c.Key {
			ts.keyCols = append(ts.keyCols, name)
		}
		slices.Sort(ts.keyCols)
		break
	}
	known := map[string]bool{}
	for _, c := range ts.columns {
		known[c.Name] = true
	}
	for i := range ts.columns {
		for _, k := range ts.keyCols {
			if ts.columns[i].Name == k {
				ts.columns[i].Key = true
			}
		}
	}
	for _, k := range ts.keyCols {
		if !known[k] {
			ts.columns = append(ts.columns, contracts.Column{Name: k, Type: "text", BaseType: "text", Key: true})
		}
	}
}

func (ts *tableState) batch() TableBatch {
	b := TableBatch{Table: ts.ref, Columns: ts.columns, Truncate: ts.truncate}
	if len(ts.newest) > 0 {
		for _, c := range ts.columns {
			if !slices.ContainsFunc(ts.newest, func(n contracts.Column) bool { return n.Name == c.Name }) {
				b.Dropped = append(b.Dropped, c.Name)
			}
		}
	}
	b.Rows = ts.states
	return b
}

// keyOf reads the key columns from the first row that has them all.
func (ts *tableState) keyOf(rows ...contracts.Row) ([]Value, bool) {
	for _, r := range rows {
		if r == nil {
			continue
		}
		key := make([]Value, 0, len(ts.keyCols))
		for _, k := range ts.keyCols {
			raw, ok := r[k]
			if !ok {
				break
			}
			key = append(key, sharedValue(raw)) // checked by Check
		}
		if len(key) == len(ts.keyCols) {
			return key, true
		}
	}
	return nil, false
}

func (ts *tableState) apply(c *contracts.Change) error {
	ver, _ := c.Version() // checked by Check
	switch c.Op {
	case contracts.OpTruncate:
		// Everything earlier in the batch happened before the truncate
		// and is gone at the source; keep only the truncate itself. (A
		// copy: taking ver's own address would allocate it for every
		// change.)
		tv := ver
		ts.truncate = &tv
		ts.states = nil
		ts.rows = map[keyID]int{}
		return nil
	case contracts.OpDelete:
		key, ok := ts.keyOf(c.Key, c.Before)
		if !ok {
			return fmt.Errorf("delete without values for key columns %v", ts.keyCols)
		}
		ts.set(key, RowChange{Delete: true, Key: key, Version: ver})
		return nil
	}
	key, ok := ts.keyOf(c.Key, c.After)
	if !ok {
		return fmt.Errorf("%s without values for key columns %v", c.Op, ts.keyCols)
	}
	next := RowChange{Key: key, Values: make(map[string]Value, len(c.After)), Version: ver}
	for col, raw := range c.After {
		next.Values[col] = sharedValue(raw) // checked by Check
	}
	ts.fillExisting(c, next.Values)
	// The state this row's unchanged columns come from: the same key,
	// or the old key when this update moved the row.
	prevKey := key
	if c.Op == contracts.OpUpdate {
		if old, ok := ts.keyOf(c.Before); ok && identity(old) != identity(key) {
			prevKey = old
		}
	}
	var prev *RowChange
	if i, ok := ts.rows[identity(prevKey)]; ok && !ts.states[i].Delete {
		prev = &ts.states[i]
	}
	// The key's own earlier state in the batch: a delete is this
	// upsert's floor, an upsert passes its floor on.
	if i, ok := ts.rows[identity(key)]; ok {
		switch own := &ts.states[i]; {
		case own.Delete:
			f := own.Version
			next.Floor = &f
		default:
			next.Floor = own.Floor
		}
	}
	moved := identity(prevKey) != identity(key)
	for _, col := range c.Unchanged {
		if _, sent := next.Values[col]; sent {
			continue
		}
		if raw, ok := c.Before[col]; ok {
			// REPLICA IDENTITY FULL sends the old row whole; an
			// unchanged column's value is the old one.
			next.Values[col] = sharedValue(raw)
			continue
		}
		var (
			v        Value
			has      bool
			pm       MovedColumn
			wasMoved bool
		)
		if prev != nil {
			v, has = prev.Values[col]
			pm, wasMoved = prev.Moved[col]
		}
		if has {
			next.Values[col] = v
		} else {
			next.Unchanged = append(next.Unchanged, col)
		}
		switch {
		case moved:
			// Taken across a key change: the value counts as the
			// move's own (version ver), and the driver may still
			// find a newer one at the old key (MovedColumn).
			mc := MovedColumn{Move: ver, From: prevKey}
			switch {
			case wasMoved:
				mc = pm
			case has:
				mc.Version = prev.colVersion(col)
			}
			next.setMoved(col, mc)
		case has || wasMoved:
			// The older change's value, with its version.
			next.setColVersion(col, prev.colVersion(col))
			if wasMoved {
				next.setMoved(col, pm)
			}
		}
	}
	if len(next.Moved) > 0 {
		if prev != nil && prev.FallbackKey != nil {
			// The earlier state itself still waits for values from a
			// row stored before the batch; so does this one.
			next.FallbackKey = prev.FallbackKey
		} else {
			next.FallbackKey = prevKey
		}
	}
	if identity(prevKey) != identity(key) {
		// The row moved: its old key no longer exists.
		ts.set(prevKey, RowChange{Delete: true, Key: prevKey, Version: ver})
	}
	ts.set(key, next)
	return nil
}

// fillExisting gives a change that does not list a column of the newest
// change, one added since with a default (ALTER TABLE … ADD COLUMN …
// DEFAULT), the value PostgreSQL gave the existing rows: the row this
// change wrote existed when the column was added, so that is its value now
// (a later change of the row in the batch overrides it). Without it the
// row would be written with NULL there. A change without column
// descriptions is left alone: nothing says what it lacks.
func (ts *tableState) fillExisting(c *contracts.Change, values map[string]Value) {
	if len(ts.fills) == 0 || len(c.Columns) == 0 {
		return
	}
	for _, f := range ts.fills {
		if _, ok := values[f.Name]; ok || slices.ContainsFunc(c.Columns, func(cc contracts.Column) bool { return cc.Name == f.Name }) {
			continue
		}
		v, _ := ValueFromJSON(json.RawMessage(f.ExistingValue)) // checked by Check
		values[f.Name] = v
	}
}

// set replaces the state of key, keeping the position where the key first
// appeared.
func (ts *tableState) set(key []Value, st RowChange) {
	id := identity(key)
	if i, ok := ts.rows[id]; ok {
		ts.states[i] = st
		return
	}
	ts.rows[id] = len(ts.states)
	ts.states = append(ts.states, st)
}

// keyID identifies a key within a table (whose keys all have the same
// number of columns).
type keyID struct {
	s    string
	null bool
}

// identity is an unambiguous identity for a key: a one-column key's value
// itself (the most common key, without allocating), else each value
// length-prefixed, NULL distinct from every text.
func identity(key []Value) keyID {
	if len(key) == 1 {
		return keyID{s: key[0].Text, null: key[0].Null}
	}
	var b strings.Builder
	for _, v := range key {
		if v.Null {
			b.WriteString("N;")
			continue
		}
		b.WriteString(strconv.Itoa(len(v.Text)))
		b.WriteByte(':')
		b.WriteString(v.Text)
		b.WriteByte(';')
	}
	return keyID{s: b.String()}
}
