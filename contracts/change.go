// Package contracts holds Rosetta's public wire vocabulary: the change event
// published on JetStream, the subject layout, and the config events. Programs
// outside Rosetta may import this package alone to tap the change stream; it
// has no dependency on the rest of the module.
//
// The JSON Schema for the change message (envelope version 1 or 2) is
// change-event.schema.json beside this file; tests validate real captured
// messages and the golden files of testdata/golden (version 1) and
// testdata/golden/v2 against it.
package contracts

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// EnvelopeVersion is the version of the change envelope written in "v".
// It changes only when a field changes meaning or disappears; new optional
// fields do not bump it.
const EnvelopeVersion = 1

// Op is the kind of change.
type Op string

const (
	OpCreate   Op = "c" // row inserted
	OpUpdate   Op = "u" // row updated (possibly including its key)
	OpDelete   Op = "d" // row deleted
	OpTruncate Op = "t" // table truncated; no key, before or after
	OpRead     Op = "r" // row read by a snapshot or backfill
)

// Valid reports whether o is one of the defined ops.
func (o Op) Valid() bool {
	switch o {
	case OpCreate, OpUpdate, OpDelete, OpTruncate, OpRead:
		return true
	}
	return false
}

// Change is one row change, the body of every message on
// rosetta.cdc.<source_id>.<schema>.<table>.<partition>.
//
// Values in Key, Before and After are JSON: null for SQL NULL, a JSON number
// for smallint/integer/bigint, a JSON boolean for boolean, and for every other
// type a JSON string holding PostgreSQL's own text output for the value
// (numeric, float, bytea as \x…, timestamps, json, arrays, ranges …), so
// nothing is lost to a JSON number's precision. Columns gives each column's
// declared type and order.
type Change struct {
	V       int      `json:"v"`
	Op      Op       `json:"op"`
	Source  Source   `json:"source"`
	Columns []Column `json:"columns,omitempty"`
	// Key holds the primary-key (replica identity) columns of the row the
	// change applies to; for an update that changes the key, the new key
	// (the old one is in Before).
	Key Row `json:"key,omitempty"`
	// Before is the old row when the replica identity provides it: the old
	// key columns when an update changed the key or on delete under
	// REPLICA IDENTITY DEFAULT, every column under REPLICA IDENTITY FULL.
	Before Row `json:"before,omitempty"`
	// After is the new row for c, u and r.
	After Row `json:"after,omitempty"`
	// Unchanged lists columns of After whose value PostgreSQL did not send
	// because it was TOASTed and unchanged by the update. They are absent
	// from After (never null); a consumer keeps the value it already has.
	Unchanged []string `json:"unchanged,omitempty"`
}

// Row maps column names to JSON values (see Change).
type Row map[string]json.RawMessage

// Source says where and when a change happened.
type Source struct {
	SourceID int64  `json:"source_id"`
	Database string `json:"db"`
	Schema   string `json:"schema"`
	Table    string `json:"table"`
	// LSN is the WAL position of this change's record ("16/B374D848").
	LSN string `json:"lsn"`
	// CommitLSN is the LSN of the commit record of the change's transaction.
	// Together with Seq it orders every change of a source totally; it is
	// the version a destination keeps to apply changes idempotently.
	CommitLSN string `json:"commit_lsn"`
	// Seq is the 1-based position of the change inside its transaction.
	Seq        int64     `json:"seq"`
	TxID       uint32    `json:"txid,omitempty"`
	CommitTime time.Time `json:"commit_time"`
	// Snapshot is true for rows read by a snapshot or backfill (op "r").
	Snapshot bool `json:"snapshot,omitempty"`
}

// Column describes one column of the changed table.
type Column struct {
	Name string `json:"name"`
	// Type is the source's declared type as format_type prints it,
	// e.g. "numeric(10,2)", "character varying(20)[]", "public.mood".
	Type string `json:"type"`
	// BaseType is the built-in PostgreSQL type the value's text form
	// belongs to: Type itself for built-in types, the base type for a
	// domain, and "text" for enums and extension types (citext, hstore…)
	// whose text form destinations store as text.
	BaseType string `json:"base_type"`
	// Key marks primary-key (replica identity) columns.
	Key bool `json:"key,omitempty"`
	// Attnum is the column's number in its table at the source
	// (pg_attribute.attnum). PostgreSQL keeps it when the column is
	// renamed and never gives it to another column of the same table, so
	// a consumer that sees a name it lacks with the attnum of a column it
	// has, whose name the change no longer lists, knows the column was
	// renamed (pgoutput itself sends names only). Absent (0) when
	// unknown. Optional: older producers never send it.
	Attnum int `json:"attnum,omitempty"`
	// ExistingValue is the value, in the same JSON form as row values,
	// that rows which existed when the column was added hold in it:
	// ALTER TABLE … ADD COLUMN … DEFAULT <non-volatile expression> fills
	// them without writing a change for them (PostgreSQL keeps the value
	// in pg_attribute.attmissingval until the table is rewritten).
	// Absent when there is no such value (the column was created with the
	// table, added without a default, or the table was rewritten since).
	// A consumer that adds the column to a copy of the table fills the
	// rows it already has with this value; changes older than the column
	// do not list it. Optional: older producers never send it.
	ExistingValue RawValue `json:"existing_value,omitempty"`
}

// RawValue is one JSON value kept as its JSON text, like json.RawMessage,
// but a string, so that Column stays comparable with ==. The empty
// RawValue is no value (omitted); JSON null decodes to it.
type RawValue string

// MarshalJSON returns the value's JSON text (null when empty).
func (v RawValue) MarshalJSON() ([]byte, error) {
	if v == "" {
		return []byte("null"), nil
	}
	return []byte(v), nil
}

// UnmarshalJSON keeps the JSON text as it is; null becomes empty.
func (v *RawValue) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*v = ""
		return nil
	}
	*v = RawValue(b)
	return nil
}

// Version is the total order of changes within one source: commit LSN,
// then position inside the transaction.
type Version struct {
	LSN uint64
	Seq int64
}

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	if v.LSN != w.LSN {
		return v.LSN < w.LSN
	}
	return v.Seq < w.Seq
}

// Version returns the change's version parsed from Source.
func (c *Change) Version() (Version, error) {
	lsn, err := ParseLSN(c.Source.CommitLSN)
	if err != nil {
		return Version{}, fmt.Errorf("change commit_lsn: %w", err)
	}
	return Version{LSN: lsn, Seq: c.Source.Seq}, nil
}

// ParseLSN parses PostgreSQL's "XXX/XXX" LSN text form.
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("parse lsn %q: want XXX/XXX", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse lsn %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse lsn %q: %w", s, err)
	}
	return h<<32 | l, nil
}

// FormatLSN prints an LSN in PostgreSQL's "XXX/XXX" form.
func FormatLSN(lsn uint64) string {
	var b [17]byte
	return string(AppendLSN(b[:0], lsn))
}

// AppendLSN appends FormatLSN(lsn) to dst without allocating: capture
// formats two LSNs per change.
func AppendLSN(dst []byte, lsn uint64) []byte {
	dst = appendHexUpper(dst, uint32(lsn>>32))
	dst = append(dst, '/')
	return appendHexUpper(dst, uint32(lsn))
}

func appendHexUpper(dst []byte, v uint32) []byte {
	const digits = "0123456789ABCDEF"
	var b [8]byte
	i := len(b)
	for {
		i--
		b[i] = digits[v&0xF]
		v >>= 4
		if v == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

// MsgID is the deterministic Nats-Msg-Id of a change: publishing the same
// change twice (after a capture crash) is deduplicated by JetStream.
func MsgID(sourceID int64, commitLSN string, seq int64) string {
	return strconv.FormatInt(sourceID, 10) + ":" + commitLSN + ":" + strconv.FormatInt(seq, 10)
}
