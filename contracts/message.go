package contracts

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"
)

// MessageVersion is the envelope version of a change message: the changes
// of one table from one transaction (or one snapshot chunk), with what they
// share written once. Version 1 (EnvelopeVersion) is one change per
// message; sinks read both while messages of version 1 may still be
// retained in a stream.
const MessageVersion = 2

// Chunk limits: capture and backfill start a new message of a table's
// changes when the next change would pass either. They are constants, not
// settings, because the split must depend on the WAL alone: a capture that
// restarts cuts a transaction into the same messages with the same
// Nats-Msg-Id, and JetStream drops the re-publish.
const (
	// ChunkChanges is the most changes one message holds.
	ChunkChanges = 1024
	// ChunkBytes is the largest body a message of several changes grows
	// to; a single change larger than it is a message of its own. It is
	// well below NATS's default max_payload (1 MiB). Capture counts the
	// bytes of the changes (entries) only, not the head: the head's
	// columns come partly from the catalog as read when the relation was
	// described, which a restarted capture may read differently, and that
	// must not move a cut. A capture message may so pass it by its head.
	ChunkBytes = 256 << 10
)

// Message is the body of every message on
// rosetta.cdc.<source_id>.<schema>.<table>.<partition> since version 2:
// changes of one table from one transaction, in transaction order, all on
// one partition. Source and Columns are what the changes share.
type Message struct {
	V       int           `json:"v"`
	Source  MessageSource `json:"source"`
	Columns []Column      `json:"columns,omitempty"`
	Changes []Entry       `json:"changes"`
}

// MessageSource is the Source that the changes of a message share: every
// field of Source but the change's own LSN and Seq.
type MessageSource struct {
	SourceID   int64     `json:"source_id"`
	Database   string    `json:"db"`
	Schema     string    `json:"schema"`
	Table      string    `json:"table"`
	CommitLSN  string    `json:"commit_lsn"`
	TxID       uint32    `json:"txid,omitempty"`
	CommitTime time.Time `json:"commit_time"`
	Snapshot   bool      `json:"snapshot,omitempty"`
}

// Entry is one change of a Message: what differs between its changes.
type Entry struct {
	Op        Op       `json:"op"`
	Seq       int64    `json:"seq"`
	LSN       string   `json:"lsn"`
	Key       Row      `json:"key,omitempty"`
	Before    Row      `json:"before,omitempty"`
	After     Row      `json:"after,omitempty"`
	Unchanged []string `json:"unchanged,omitempty"`
}

// All yields the message's changes, each a whole Change (Source with its
// own LSN and Seq, the shared Columns), in transaction order. The changes
// share m's Columns slice and rows: treat them as read-only.
func (m *Message) All() iter.Seq2[int, Change] {
	return func(yield func(int, Change) bool) {
		for i := range m.Changes {
			if !yield(i, m.Change(i)) {
				return
			}
		}
	}
}

// Change returns the message's i-th change as a whole Change.
func (m *Message) Change(i int) Change {
	e := &m.Changes[i]
	s := &m.Source
	return Change{
		V: m.V, Op: e.Op, Columns: m.Columns, Key: e.Key, Before: e.Before, After: e.After, Unchanged: e.Unchanged,
		Source: Source{SourceID: s.SourceID, Database: s.Database, Schema: s.Schema, Table: s.Table,
			LSN: e.LSN, CommitLSN: s.CommitLSN, Seq: e.Seq, TxID: s.TxID, CommitTime: s.CommitTime,
			Snapshot: s.Snapshot},
	}
}

// DecodeMessage parses a change message of either version: a version 1
// body becomes a Message of its one change. It checks the envelope only
// (the version and the presence of changes); a consumer checks each
// change's content as it needs.
func DecodeMessage(data []byte) (*Message, error) {
	var head struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("decode change message: %w", err)
	}
	switch head.V {
	case EnvelopeVersion:
		var c Change
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("decode change message v1: %w", err)
		}
		return MessageOf([]Change{c}), nil
	case MessageVersion:
		var m Message
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("decode change message v2: %w", err)
		}
		if len(m.Changes) == 0 {
			return nil, errors.New("decode change message v2: no changes")
		}
		return &m, nil
	}
	return nil, fmt.Errorf("decode change message: unknown envelope version %d (this reader knows 1 and 2)", head.V)
}

// MessageOf returns the message holding changes, which must be of one
// table of one transaction (the first change's Source and Columns are the
// message's). For building test input and for taps that re-publish.
func MessageOf(changes []Change) *Message {
	m := &Message{V: MessageVersion, Changes: make([]Entry, len(changes))}
	if len(changes) > 0 {
		s := &changes[0].Source
		m.Source = MessageSource{SourceID: s.SourceID, Database: s.Database, Schema: s.Schema, Table: s.Table,
			CommitLSN: s.CommitLSN, TxID: s.TxID, CommitTime: s.CommitTime, Snapshot: s.Snapshot}
		m.Columns = changes[0].Columns
	}
	for i := range changes {
		c := &changes[i]
		m.Changes[i] = Entry{Op: c.Op, Seq: c.Source.Seq, LSN: c.Source.LSN, Key: c.Key, Before: c.Before,
			After: c.After, Unchanged: c.Unchanged}
	}
	return m
}

// SameMessage reports whether b may follow a in one message: the same
// table of the same transaction (or snapshot), with the same columns.
func SameMessage(a, b *Change) bool {
	x, y := &a.Source, &b.Source
	if x.SourceID != y.SourceID || x.Schema != y.Schema || x.Table != y.Table || x.CommitLSN != y.CommitLSN ||
		x.TxID != y.TxID || !x.CommitTime.Equal(y.CommitTime) || x.Snapshot != y.Snapshot || x.Database != y.Database {
		return false
	}
	if len(a.Columns) != len(b.Columns) {
		return false
	}
	if len(a.Columns) > 0 && &a.Columns[0] == &b.Columns[0] {
		return true
	}
	for i := range a.Columns {
		if a.Columns[i] != b.Columns[i] {
			return false
		}
	}
	return true
}

// MessageID is the Nats-Msg-Id of a change message: source, commit LSN,
// table, partition and chunk (the message's index among its transaction's
// messages of that table and partition). Capture cuts a transaction into
// the same chunks every time it reads it, so a re-published message has
// the same id. The table is written as its subject tokens, so the id has
// no separator ambiguity.
func MessageID(sourceID int64, commitLSN string, schema, table string, partition, chunk int) string {
	var b strings.Builder
	b.Grow(len(commitLSN) + len(schema) + len(table) + 32)
	b.WriteString(strconv.FormatInt(sourceID, 10))
	b.WriteByte(':')
	b.WriteString(commitLSN)
	b.WriteByte(':')
	b.WriteString(EncodeToken(schema))
	b.WriteByte('.')
	b.WriteString(EncodeToken(table))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(partition))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(chunk))
	return b.String()
}
