package pgrepl

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rosettacdc/rosetta/contracts"
)

// Column is one column of a relation as the decoder needs it: the
// contract's description plus the OID that picks the JSON form of values.
type Column struct {
	contracts.Column
	// ValueOID is the built-in type whose text form the column's values
	// have: the column's type, a domain's base type, or pgtype.TextOID for
	// enums and non-built-in types. int2/int4/int8 values become JSON
	// numbers, bool values JSON booleans, everything else JSON strings.
	ValueOID uint32
	// Defaulted is set when the column has a default or is an identity
	// column (pg_attribute.atthasdef, attidentity). Added to a table, such
	// a column gives the rows already there values of their own (a
	// rewrite of the table, which logical replication does not send),
	// unless PostgreSQL kept one existing value for all of them
	// (Column.ExistingValue).
	Defaulted bool
}

// UnsentValues names columns added to a table whose existing rows got
// values logical replication never sent: a column added with a volatile
// default (gen_random_uuid(), clock_timestamp(), a serial or identity
// column) rewrites the table, or the table was rewritten before the
// relation was resolved and a non-volatile default's existing value is gone
// with it. Destinations hold NULL in those columns for those rows until
// the rows change again or the table is backfilled.
type UnsentValues struct {
	Schema, Table string
	Columns       []string
}

// Resolver supplies what a pgoutput RelationMessage does not carry: the
// declared and base type names of each column and which columns form the
// primary key. The decoder calls it once per RelationMessage, which
// PostgreSQL sends before the first change of a relation in a session and
// again after the relation's schema changed (e.g. ADD COLUMN).
//
// It returns one Column per rel.Columns entry, in the same order.
type Resolver interface {
	ResolveRelation(ctx context.Context, rel *pglogrepl.RelationMessage) ([]Column, error)
}

// CommitWaiter is the optional capability of a Resolver that reads the
// source's live catalog. PostgreSQL writes a commit record, which the
// walsender may decode and send at once, before the transaction becomes
// visible to other sessions' snapshots; a catalog read in between sees the
// table as it was before the transaction's DDL (an added column missing,
// its default unknown). The decoder calls WaitCommitted with the
// transaction's xid before resolving a relation message inside it, once
// per transaction.
type CommitWaiter interface {
	WaitCommitted(ctx context.Context, xid uint32) error
}

// Decoder turns pgoutput messages (protocol version 1, text mode) into
// changes. It is not safe for concurrent use; one decoder follows one
// replication stream, in order. Its only I/O is through the Resolver.
type Decoder struct {
	sourceID  int64
	database  string
	resolver  Resolver
	types     *pgtype.Map
	relations map[uint32]*relation
	tx        *txState
	spans     []valueSpan // scratch of newRow and oldRow
	wire      wireScratch // scratch of DecodeRowMessage
	unsent    []UnsentValues
	// waited is the last transaction WaitCommitted returned for.
	waited uint32
	// baseline holds, per relation, the columns an earlier session of the
	// same source last described (SetBaseline): a relation's first
	// description in this decoder is compared with it.
	baseline map[uint32][]contracts.Column
}

type relation struct {
	schema, table string
	identity      byte
	columns       []contracts.Column // shared by every change of the relation
	valueOIDs     []uint32
	inIdentity    []bool // part of the replica identity (pgoutput column flag 1)
	isKey         []bool
	keys          int // how many columns isKey marks
}

type txState struct {
	xid        uint32
	commitLSN  string
	commitTime time.Time
	seq        int64
}

// NewDecoder returns a decoder for the changes of one source database.
func NewDecoder(sourceID int64, database string, r Resolver) *Decoder {
	return &Decoder{
		sourceID:  sourceID,
		database:  database,
		resolver:  r,
		types:     pgtype.NewMap(),
		relations: make(map[uint32]*relation),
	}
}

// TakeUnsentValues returns, and forgets, the tables that relation messages
// decoded since the last call described with a new column whose values
// for existing rows were never sent (see UnsentValues). A column is new
// when the relation was described before in this decoder's life (or in
// its baseline, see SetBaseline) and that description had no column of its
// number (of its name, when the number is not known). A relation described
// for the first time has nothing to compare with, so a column added before
// it is not reported.
func (d *Decoder) TakeUnsentValues() []UnsentValues {
	u := d.unsent
	d.unsent = nil
	return u
}

// Known returns the columns of every relation described so far, this
// decoder's descriptions over its baseline's: what the decoder of the
// source's next replication session takes as its baseline, so that a
// column added while the connection was re-established is still found
// new. The slices are shared; callers must not modify them.
//
// The next session resumes from the confirmed position, which may be
// before descriptions already seen; a column found new then (the same
// ALTER replayed) is reported again, so the report is at least once.
func (d *Decoder) Known() map[uint32][]contracts.Column {
	out := make(map[uint32][]contracts.Column, len(d.baseline)+len(d.relations))
	for id, cols := range d.baseline {
		out[id] = cols
	}
	for id, r := range d.relations {
		out[id] = r.columns
	}
	return out
}

// SetBaseline gives the decoder what an earlier session's decoder Known.
func (d *Decoder) SetBaseline(b map[uint32][]contracts.Column) { d.baseline = b }

// InTransaction reports whether a Begin has been decoded and its Commit not
// yet.
func (d *Decoder) InTransaction() bool { return d.tx != nil }

// Decode consumes one pgoutput message. walStart is the WALStart of the
// XLogData that carried it; it becomes the LSN of the changes. Insert,
// Update and Delete yield one change, Truncate one change per truncated
// relation, every other message none.
//
// The Columns slice of a change is shared by all changes of its relation
// until the relation is described again; callers must not modify it.
func (d *Decoder) Decode(ctx context.Context, walStart pglogrepl.LSN, msg pglogrepl.Message) ([]contracts.Change, error) {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		return nil, d.relation(ctx, m)
	case *pglogrepl.BeginMessage:
		if d.tx != nil {
			return nil, fmt.Errorf("decode begin of xid %d: transaction %d not committed", m.Xid, d.tx.xid)
		}
		d.tx = &txState{xid: m.Xid, commitLSN: contracts.FormatLSN(uint64(m.FinalLSN)), commitTime: m.CommitTime.UTC()}
		return nil, nil
	case *pglogrepl.CommitMessage:
		if d.tx == nil {
			return nil, fmt.Errorf("decode commit at %s: no transaction began", m.CommitLSN)
		}
		d.tx = nil
		return nil, nil
	case *pglogrepl.InsertMessage:
		c, err := d.insert(walStart, m)
		if err != nil {
			return nil, err
		}
		return []contracts.Change{c}, nil
	case *pglogrepl.UpdateMessage:
		c, err := d.update(walStart, m)
		if err != nil {
			return nil, err
		}
		return []contracts.Change{c}, nil
	case *pglogrepl.DeleteMessage:
		c, err := d.delete(walStart, m)
		if err != nil {
			return nil, err
		}
		return []contracts.Change{c}, nil
	case *pglogrepl.TruncateMessage:
		out := make([]contracts.Change, 0, len(m.RelationIDs))
		for _, id := range m.RelationIDs {
			rel, err := d.rel(id, "truncate")
			if err != nil {
				return nil, err
			}
			c, err := d.change(contracts.OpTruncate, walStart, rel)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	default:
		// Type messages (custom type names; the Resolver gives the names),
		// Origin and logical decoding messages carry no row change.
		return nil, nil
	}
}

// DecodeRowMessage decodes a pgoutput Insert, Update or Delete message
// (protocol version 1 form) straight from its bytes, with the same result
// as Decode of what pglogrepl.Parse makes of them. ok is false, and
// nothing is done, for any other message: the caller parses it and calls
// Decode. Capture's messages are mostly these three; parsing them in place
// saves pglogrepl.Parse's two allocations per column (a struct and a copy
// of the value), as the values are copied into the change anyway.
func (d *Decoder) DecodeRowMessage(walStart pglogrepl.LSN, data []byte) (changes []contracts.Change, ok bool, err error) {
	if len(data) == 0 {
		return nil, false, nil
	}
	var c contracts.Change
	switch pglogrepl.MessageType(data[0]) {
	case pglogrepl.MessageTypeInsert:
		m, err := d.wire.insert(data[1:])
		if err != nil {
			return nil, true, fmt.Errorf("parse pgoutput message at %s: %w", walStart, err)
		}
		c, err = d.insert(walStart, m)
		if err != nil {
			return nil, true, err
		}
	case pglogrepl.MessageTypeUpdate:
		m, err := d.wire.update(data[1:])
		if err != nil {
			return nil, true, fmt.Errorf("parse pgoutput message at %s: %w", walStart, err)
		}
		c, err = d.update(walStart, m)
		if err != nil {
			return nil, true, err
		}
	case pglogrepl.MessageTypeDelete:
		m, err := d.wire.delete(data[1:])
		if err != nil {
			return nil, true, fmt.Errorf("parse pgoutput message at %s: %w", walStart, err)
		}
		c, err = d.delete(walStart, m)
		if err != nil {
			return nil, true, err
		}
	default:
		return nil, false, nil
	}
	return []contracts.Change{c}, true, nil
}

func (d *Decoder) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	if w, ok := d.resolver.(CommitWaiter); ok && d.tx != nil && d.tx.xid != 0 && d.waited != d.tx.xid {
		if err := w.WaitCommitted(ctx, d.tx.xid); err != nil {
			return fmt.Errorf("resolve relation %s.%s: %w", m.Namespace, m.RelationName, err)
		}
		d.waited = d.tx.xid
	}
	cols, err := d.resolver.ResolveRelation(ctx, m)
	if err != nil {
		return fmt.Errorf("resolve relation %s.%s: %w", m.Namespace, m.RelationName, err)
	}
	if len(cols) != len(m.Columns) {
		return fmt.Errorf("resolve relation %s.%s: resolver returned %d columns, relation has %d",
			m.Namespace, m.RelationName, len(cols), len(m.Columns))
	}
	r := &relation{
		schema:     m.Namespace,
		table:      m.RelationName,
		identity:   m.ReplicaIdentity,
		columns:    make([]contracts.Column, len(cols)),
		valueOIDs:  make([]uint32, len(cols)),
		inIdentity: make([]bool, len(cols)),
		isKey:      make([]bool, len(cols)),
	}
	for i, c := range cols {
		c.Column.Name = m.Columns[i].Name
		r.columns[i] = c.Column
		r.valueOIDs[i] = c.ValueOID
		r.inIdentity[i] = m.Columns[i].Flags&1 != 0
		r.isKey[i] = c.Key
		if c.Key {
			r.keys++
		}
	}
	prev, ok := d.baseline[m.RelationID]
	if r, seen := d.relations[m.RelationID]; seen {
		prev, ok = r.columns, true
	}
	if ok {
		if cols := addedWithUnsentValues(prev, cols); len(cols) > 0 {
			d.unsent = append(d.unsent, UnsentValues{Schema: m.Namespace, Table: m.RelationName, Columns: cols})
		}
	}
	d.relations[m.RelationID] = r
	return nil
}

// addedWithUnsentValues returns the names of the columns of cur that prev
// did not have and whose existing rows hold values never replicated: a
// default or identity, and no single existing value. Column numbers are
// never reused within a table, so a column dropped and added again under
// its old name is new; a renamed one is not.
func addedWithUnsentValues(prev []contracts.Column, cur []Column) []string {
	var out []string
	for _, c := range cur {
		if !c.Defaulted || c.ExistingValue != "" {
			continue
		}
		known := false
		for _, p := range prev {
			if c.Attnum != 0 && p.Attnum != 0 {
				known = c.Attnum == p.Attnum
			} else {
				known = c.Name == p.Name
			}
			if known {
				break
			}
		}
		if !known {
			out = append(out, c.Name)
		}
	}
	return out
}

func (d *Decoder) rel(id uint32, what string) (*relation, error) {
	r, ok := d.relations[id]
	if !ok {
		return nil, fmt.Errorf("decode %s: relation %d was not described by a relation message", what, id)
	}
	return r, nil
}

// change starts a change of rel in the current transaction, numbering it.
func (d *Decoder) change(op contracts.Op, walStart pglogrepl.LSN, r *relation) (contracts.Change, error) {
	if d.tx == nil {
		return contracts.Change{}, fmt.Errorf("decode %s on %s.%s at %s: outside a transaction", op, r.schema, r.table, walStart)
	}
	d.tx.seq++
	return contracts.Change{
		V:  contracts.EnvelopeVersion,
		Op: op,
		Source: contracts.Source{
			SourceID:   d.sourceID,
			Database:   d.database,
			Schema:     r.schema,
			Table:      r.table,
			LSN:        contracts.FormatLSN(uint64(walStart)),
			CommitLSN:  d.tx.commitLSN,
			Seq:        d.tx.seq,
			TxID:       d.tx.xid,
			CommitTime: d.tx.commitTime,
		},
		Columns: r.columns,
	}, nil
}

func (d *Decoder) insert(walStart pglogrepl.LSN, m *pglogrepl.InsertMessage) (contracts.Change, error) {
	r, err := d.rel(m.RelationID, "insert")
	if err != nil {
		return contracts.Change{}, err
	}
	c, err := d.change(contracts.OpCreate, walStart, r)
	if err != nil {
		return c, err
	}
	if c.After, c.Unchanged, err = d.newRow(r, m.Tuple, nil); err != nil {
		return c, fmt.Errorf("decode insert on %s.%s: %w", r.schema, r.table, err)
	}
	c.Key = keyOf(r, c.After, nil)
	return c, nil
}

func (d *Decoder) update(walStart pglogrepl.LSN, m *pglogrepl.UpdateMessage) (contracts.Change, error) {
	r, err := d.rel(m.RelationID, "update")
	if err != nil {
		return contracts.Change{}, err
	}
	c, err := d.change(contracts.OpUpdate, walStart, r)
	if err != nil {
		return c, err
	}
	// The old tuple is 'K' (replica identity columns, sent when the key
	// changed) or 'O' (the whole old row under REPLICA IDENTITY FULL).
	var full *pglogrepl.TupleData
	if m.OldTuple != nil {
		if c.Before, err = d.oldRow(r, m.OldTupleType, m.OldTuple); err != nil {
			return c, fmt.Errorf("decode update on %s.%s: old tuple: %w", r.schema, r.table, err)
		}
		if m.OldTupleType == pglogrepl.UpdateMessageTupleTypeOld {
			full = m.OldTuple
		}
	}
	if m.NewTuple == nil {
		return c, fmt.Errorf("decode update on %s.%s: no new tuple", r.schema, r.table)
	}
	if c.After, c.Unchanged, err = d.newRow(r, m.NewTuple, full); err != nil {
		return c, fmt.Errorf("decode update on %s.%s: %w", r.schema, r.table, err)
	}
	c.Key = keyOf(r, c.After, c.Before)
	return c, nil
}

func (d *Decoder) delete(walStart pglogrepl.LSN, m *pglogrepl.DeleteMessage) (contracts.Change, error) {
	r, err := d.rel(m.RelationID, "delete")
	if err != nil {
		return contracts.Change{}, err
	}
	c, err := d.change(contracts.OpDelete, walStart, r)
	if err != nil {
		return c, err
	}
	if m.OldTuple == nil {
		return c, fmt.Errorf("decode delete on %s.%s: no old tuple", r.schema, r.table)
	}
	if c.Before, err = d.oldRow(r, m.OldTupleType, m.OldTuple); err != nil {
		return c, fmt.Errorf("decode delete on %s.%s: %w", r.schema, r.table, err)
	}
	c.Key = keyOf(r, c.Before, nil)
	return c, nil
}

// newRow decodes a new tuple. An unchanged TOASTed column ('u') is taken
// from the full old tuple when REPLICA IDENTITY FULL sent one with the
// value; otherwise it is listed in unchanged and left out of the row.
func (d *Decoder) newRow(r *relation, t *pglogrepl.TupleData, full *pglogrepl.TupleData) (contracts.Row, []string, error) {
	if len(t.Columns) != len(r.columns) {
		return nil, nil, fmt.Errorf("tuple has %d columns, relation has %d", len(t.Columns), len(r.columns))
	}
	if full != nil && len(full.Columns) != len(r.columns) {
		full = nil
	}
	var unchanged []string
	d.spans = d.spans[:0]
	buf := make([]byte, 0, valuesSize(t))
	for i, tc := range t.Columns {
		if tc.DataType == pglogrepl.TupleDataTypeToast {
			if full != nil && full.Columns[i].DataType != pglogrepl.TupleDataTypeToast {
				tc = full.Columns[i]
			} else {
				unchanged = append(unchanged, r.columns[i].Name)
				continue
			}
		}
		var err error
		if buf, err = d.appendValue(buf, r, i, tc); err != nil {
			return nil, nil, err
		}
	}
	return d.row(r, buf), unchanged, nil
}

// oldRow decodes an old tuple: under 'K' only the replica identity columns
// (pgoutput sends the others as null placeholders), under 'O' every column
// that has a value.
func (d *Decoder) oldRow(r *relation, kind uint8, t *pglogrepl.TupleData) (contracts.Row, error) {
	if len(t.Columns) != len(r.columns) {
		return nil, fmt.Errorf("old tuple has %d columns, relation has %d", len(t.Columns), len(r.columns))
	}
	d.spans = d.spans[:0]
	buf := make([]byte, 0, valuesSize(t))
	for i, tc := range t.Columns {
		if kind == pglogrepl.UpdateMessageTupleTypeKey && !r.inIdentity[i] {
			continue
		}
		if tc.DataType == pglogrepl.TupleDataTypeToast {
			continue
		}
		var err error
		if buf, err = d.appendValue(buf, r, i, tc); err != nil {
			return nil, err
		}
	}
	return d.row(r, buf), nil
}

// valueSpan is where appendValue wrote column col's value in a row's
// buffer.
type valueSpan struct{ col, start, end int }

// valuesSize is room for the JSON values of t in one buffer: its text,
// quotes, and some escaping (the buffer grows if that is not enough).
func valuesSize(t *pglogrepl.TupleData) int {
	n := 0
	for _, tc := range t.Columns {
		n += len(tc.Data) + 6
	}
	return n
}

// row maps the values appendValue wrote into buf (d.spans) to their
// columns. All values of a row share buf, one allocation instead of one
// per value; each is capped at its end, so appending to one never
// overwrites the next.
func (d *Decoder) row(r *relation, buf []byte) contracts.Row {
	row := make(contracts.Row, len(d.spans))
	for _, s := range d.spans {
		row[r.columns[s.col].Name] = json.RawMessage(buf[s.start:s.end:s.end])
	}
	return row
}

// keyOf picks the key columns from row, falling back to alt for a key
// column row lacks (a TOASTed key column the update did not change).
func keyOf(r *relation, row, alt contracts.Row) contracts.Row {
	var key contracts.Row
	for i, c := range r.columns {
		if !r.isKey[i] {
			continue
		}
		v, ok := row[c.Name]
		if !ok {
			v, ok = alt[c.Name]
		}
		if !ok {
			continue
		}
		if key == nil {
			key = make(contracts.Row, r.keys)
		}
		key[c.Name] = v
	}
	return key
}

// appendValue appends column i's value to buf as JSON and records where in
// d.spans.
func (d *Decoder) appendValue(buf []byte, r *relation, i int, tc *pglogrepl.TupleDataColumn) ([]byte, error) {
	start := len(buf)
	switch tc.DataType {
	case pglogrepl.TupleDataTypeNull:
		buf = append(buf, "null"...)
	case pglogrepl.TupleDataTypeText:
		var err error
		if buf, err = appendTextValue(buf, d.types, r.valueOIDs[i], tc.Data); err != nil {
			return nil, fmt.Errorf("column %s (%s): %w", r.columns[i].Name, r.columns[i].Type, err)
		}
	default:
		return nil, fmt.Errorf("column %s: tuple data kind %q not supported (pgoutput must run in text mode)", r.columns[i].Name, tc.DataType)
	}
	d.spans = append(d.spans, valueSpan{col: i, start: start, end: len(buf)})
	return buf, nil
}
