package cdc

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
)

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
		order  []contracts.Table
		tables = map[contracts.Table]*tableState{}
	)
	// First pass: the column set per table, so that every change of a
	// table is keyed by the same key columns (those of the newest change).
	for i := range changes {
		c := &changes[i]
		ref := contracts.Table{Schema: c.Source.Schema, Name: c.Source.Table}
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
		ts := tables[contracts.Table{Schema: c.Source.Schema, Name: c.Source.Table}]
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
	// A copy has the same table, version, operation and key (a version
	// names one change of a source; tests and tools may still give
	// changes of different keys one version, and those all count).
	type seenKey struct {
		schema, table string
		v             contracts.Version
		op            contracts.Op
		key           string
	}
	seen := make(map[seenKey]bool, len(changes))
	out := make([]contracts.Change, 0, len(changes))
	for _, j := range idx {
		c := &changes[j]
		k := seenKey{c.Source.Schema, c.Source.Table, versions[j], c.Op, rowIdentity(c.Key)}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, *c)
	}
	return out, nil
}

// rowIdentity is a row's columns and raw values in column order, for
// telling copies of a change apart from other changes.
func rowIdentity(r contracts.Row) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(r)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.Write(r[k])
		b.WriteByte(0)
	}
	return b.String()
}

type tableState struct {
	ref     contracts.Table
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
		if c.Source.Schema != ts.ref.Schema || c.Source.Table != ts.ref.Name || len(c.Key) == 0 {
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
