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
	"encoding/json"
	"fmt"

	"github.com/rosettacdc/rosetta/contracts"
)

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
	Table contracts.Table
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

// Decode parses and checks one message body holding one change: a
// version 1 envelope, or a version 2 message of one change (a message of
// several gives ErrNotOneChange; DecodeMessage reads any). The change does
// not refer to data (see Decoder for one that does, with fewer
// allocations).
func Decode(data []byte) (contracts.Change, error) {
	return decodeOne(data, nil)
}

func decodeOne(data []byte, d *Decoder) (contracts.Change, error) {
	if version(data) != contracts.MessageVersion {
		return decode(data, d)
	}
	cs, errs, err := decodeMessage(data, d, nil, nil)
	if err != nil {
		return contracts.Change{}, err
	}
	if len(cs) != 1 {
		return contracts.Change{}, fmt.Errorf("decode change: %w (%d changes)", ErrNotOneChange, len(cs))
	}
	if errs[0] != nil {
		return contracts.Change{}, errs[0]
	}
	return cs[0], nil
}

func decode(data []byte, d *Decoder) (contracts.Change, error) {
	c, err := parse(data, d)
	if err != nil {
		return contracts.Change{}, err
	}
	if err := checkChange(&c); err != nil {
		return contracts.Change{}, err
	}
	return c, nil
}

// checkChange is Check with the context every decoder reports it under.
func checkChange(c *contracts.Change) error {
	if err := Check(c); err != nil {
		return fmt.Errorf("check change: %w", err)
	}
	return nil
}

// parse reads a version 1 body without checking the change.
func parse(data []byte, d *Decoder) (contracts.Change, error) {
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
	return c, nil
}
