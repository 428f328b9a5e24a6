package changetail

import (
	"bytes"
	"encoding/json"
	"iter"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
)

// Pos is where a change is in the stream: the stream sequence of its
// message and, since a message may hold several changes (envelope version
// 2), the change's index among them.
type Pos struct {
	Seq   uint64 // the message's stream sequence; 0 when unknown
	Index int    // the change's index in its message, from 0
	Of    int    // how many changes the message holds
}

// String is "17" for the only change of message 17 and "17.2" for the
// third of several; empty when the sequence is unknown.
func (p Pos) String() string {
	if p.Seq == 0 {
		return ""
	}
	s := strconv.FormatUint(p.Seq, 10)
	if p.Of > 1 {
		s += "." + strconv.Itoa(p.Index)
	}
	return s
}

// Line is the pretty one-line form of a change, not yet escaped:
//
//	2026-11-23T10:00:00.123456Z  u  public.orders  id=42  title,price  #17.2
//
// time (commit time), op, schema.table, key, changed columns, position
// (Pos: the stream sequence, and the change's index when its message holds
// several).
// For an update the changed columns are those whose value differs from
// Before when the old row is known (REPLICA IDENTITY FULL), otherwise every
// column PostgreSQL sent; TOASTed unchanged columns are never listed.
func Line(ch *contracts.Change, pos Pos) string {
	var b strings.Builder
	b.WriteString(ch.Source.CommitTime.UTC().Format("2006-01-02T15:04:05.000000Z"))
	b.WriteString("  ")
	b.WriteString(string(ch.Op))
	b.WriteString("  ")
	b.WriteString(ch.Source.Schema + "." + ch.Source.Table)
	if key := formatRow(ch.Key, columnOrder(ch)); key != "" {
		b.WriteString("  " + key)
	}
	if cols := changedColumns(ch); len(cols) > 0 {
		b.WriteString("  " + strings.Join(cols, ","))
	}
	if p := pos.String(); p != "" {
		b.WriteString("  #" + p)
	}
	return b.String()
}

// Changes decodes a message body of either envelope version
// (contracts.DecodeMessage) and yields each of its changes, whole, with
// its position; seq is the message's stream sequence. A body that is not
// a change message is the error, and yields nothing.
func Changes(data []byte, seq uint64) (iter.Seq2[Pos, contracts.Change], error) {
	m, err := contracts.DecodeMessage(data)
	if err != nil {
		return nil, err
	}
	return func(yield func(Pos, contracts.Change) bool) {
		for i, ch := range m.All() {
			if !yield(Pos{Seq: seq, Index: i, Of: len(m.Changes)}, ch) {
				return
			}
		}
	}, nil
}

// columnOrder is the names of ch's columns in table order.
func columnOrder(ch *contracts.Change) []string {
	names := make([]string, 0, len(ch.Columns))
	for _, c := range ch.Columns {
		names = append(names, c.Name)
	}
	return names
}

// ordered returns the keys of row in the order of names, then any others
// sorted (a change without columns still prints deterministically).
func ordered(row contracts.Row, names []string) []string {
	out := make([]string, 0, len(row))
	seen := make(map[string]bool, len(row))
	for _, n := range names {
		if _, ok := row[n]; ok && !seen[n] {
			out = append(out, n)
			seen[n] = true
		}
	}
	var rest []string
	for n := range row {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func formatRow(row contracts.Row, names []string) string {
	parts := make([]string, 0, len(row))
	for _, n := range ordered(row, names) {
		parts = append(parts, n+"="+string(row[n]))
	}
	return strings.Join(parts, ",")
}

func changedColumns(ch *contracts.Change) []string {
	if ch.Op != contracts.OpUpdate && ch.Op != contracts.OpCreate && ch.Op != contracts.OpRead {
		return nil
	}
	names := ordered(ch.After, columnOrder(ch))
	if ch.Op != contracts.OpUpdate || !fullBefore(ch) {
		return names
	}
	var changed []string
	for _, n := range names {
		if !bytes.Equal(ch.Before[n], ch.After[n]) {
			changed = append(changed, n)
		}
	}
	return changed
}

// fullBefore reports whether Before holds the whole old row rather than
// just the old key.
func fullBefore(ch *contracts.Change) bool {
	if len(ch.Before) == 0 {
		return false
	}
	for n := range ch.After {
		if _, ok := ch.Before[n]; !ok {
			return false
		}
	}
	return true
}

// Event is one change as the API streams it to the console (the data of a
// "change" server-sent event). Every string that comes from the source
// (names, values, the line) is escaped (Escape) before it is put here: a
// browser shows it as written, so a control or bidi character in a table
// name reads as \u0001, not as an invisible reordering.
type Event struct {
	Seq uint64 `json:"seq"`
	// Index is the change's index among the changes of its message
	// (stream sequence Seq), from 0; MessageChanges is how many it holds.
	Index          int       `json:"index"`
	MessageChanges int       `json:"message_changes"`
	Op             string    `json:"op"`
	Schema         string    `json:"schema"`
	Table          string    `json:"table"`
	CommitTime     time.Time `json:"commit_time"`
	CommitLSN      string    `json:"commit_lsn"`
	// Key is the key columns as "id=42,region=\"eu\"" (values in JSON).
	Key string `json:"key"`
	// Changed is the columns the change set (Line's column list).
	Changed []string `json:"changed"`
	// Values are the new row (the old key or row for a delete), in
	// table order, each value in its JSON text.
	Values []Value `json:"values"`
	// Line is the change as `rosetta tail` prints it.
	Line string `json:"line"`
	// Error is set, and the rest empty but Seq, when the message is not a
	// change message.
	Error string `json:"error,omitempty"`
}

// ID is the event's position as the API's event id: Pos.String.
func (e *Event) ID() string {
	return Pos{Seq: e.Seq, Index: e.Index, Of: e.MessageChanges}.String()
}

// Value is one column of Event.Values.
type Value struct {
	Column string `json:"column"`
	Value  string `json:"value"`
}

// Events decodes a message body into one Event per change, in message
// order; a body that is not a change message is one Event with Error, not
// a failure.
func Events(data []byte, seq uint64) []Event {
	changes, err := Changes(data, seq)
	if err != nil {
		return []Event{{Seq: seq, Changed: []string{}, Values: []Value{}, Error: Escape("not a change message: " + err.Error())}}
	}
	var out []Event
	for pos, ch := range changes {
		out = append(out, newEvent(&ch, pos))
	}
	return out
}

func newEvent(ch *contracts.Change, pos Pos) Event {
	names := columnOrder(ch)
	row := ch.After
	if ch.Op == contracts.OpDelete {
		row = ch.Before
		if len(row) == 0 {
			row = ch.Key
		}
	}
	ev := Event{
		Seq: pos.Seq, Index: pos.Index, MessageChanges: pos.Of,
		Op: Escape(string(ch.Op)), Schema: Escape(ch.Source.Schema), Table: Escape(ch.Source.Table),
		CommitTime: ch.Source.CommitTime.UTC(), CommitLSN: Escape(ch.Source.CommitLSN),
		Key: Escape(formatRow(ch.Key, names)), Changed: []string{}, Values: []Value{},
		Line: Escape(Line(ch, pos)),
	}
	for _, c := range changedColumns(ch) {
		ev.Changed = append(ev.Changed, Escape(c))
	}
	for _, n := range ordered(row, names) {
		ev.Values = append(ev.Values, Value{Column: Escape(n), Value: Escape(string(row[n]))})
	}
	return ev
}

// JSONLines is a message body as lines of JSON (`rosetta tail --json`),
// escaped: one per change, each a whole version 1 change event
// (contracts.Change, "v":1, valid under change-event.schema.json) whatever
// envelope version the message had, so a reader of lines needs no
// envelope logic and reads them with contracts.DecodeMessage or any
// version 1 reader. Lines carry no stream position. A body that is not a
// change message is one line of it as it is (compacted when it spans
// lines): shown, not hidden.
func JSONLines(data []byte) []string {
	m, err := contracts.DecodeMessage(data)
	if err != nil {
		line := data
		if bytes.ContainsAny(data, "\r\n") {
			var buf bytes.Buffer
			if err := json.Compact(&buf, data); err == nil {
				line = buf.Bytes()
			}
		}
		return []string{Escape(string(line))}
	}
	out := make([]string, 0, len(m.Changes))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, ch := range m.All() {
		ch.V = contracts.EnvelopeVersion
		buf.Reset()
		// encoding/json compacts row values (AppendJSON would trust
		// them to be compact already) and cannot fail on a decoded
		// change; the error is kept for form's sake.
		if err := enc.Encode(&ch); err != nil {
			out = append(out, Escape(`{"error":`+strconv.Quote(err.Error())+`}`))
			continue
		}
		out = append(out, Escape(strings.TrimSuffix(buf.String(), "\n")))
	}
	return out
}

// TextLines is a message body as escaped pretty lines (`rosetta tail`),
// one per change (Line); a body that is not a change message is one line
// saying so.
func TextLines(data []byte, seq uint64) []string {
	changes, err := Changes(data, seq)
	if err != nil {
		return []string{Escape("#" + strconv.FormatUint(seq, 10) + "  (not a change message: " + err.Error() + ")")}
	}
	var out []string
	for pos, ch := range changes {
		out = append(out, Escape(Line(&ch, pos)))
	}
	return out
}
