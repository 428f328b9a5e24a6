package changetail

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
)

// Line is the pretty one-line form of a change, not yet escaped:
//
//	2026-11-23T10:00:00.123456Z  u  public.orders  id=42  title,price  #17
//
// time (commit time), op, schema.table, key, changed columns, stream sequence.
// For an update the changed columns are those whose value differs from
// Before when the old row is known (REPLICA IDENTITY FULL), otherwise every
// column PostgreSQL sent; TOASTed unchanged columns are never listed.
func Line(ch *contracts.Change, seq uint64) string {
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
	if seq != 0 {
		b.WriteString("  #" + strconv.FormatUint(seq, 10))
	}
	return b.String()
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
	Seq        uint64    `json:"seq"`
	Op         string    `json:"op"`
	Schema     string    `json:"schema"`
	Table      string    `json:"table"`
	CommitTime time.Time `json:"commit_time"`
	CommitLSN  string    `json:"commit_lsn"`
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
	// change event.
	Error string `json:"error,omitempty"`
}

// Value is one column of Event.Values.
type Value struct {
	Column string `json:"column"`
	Value  string `json:"value"`
}

// NewEvent decodes a message body into an Event; a body that is not a
// change event is an Event with Error, not a failure.
func NewEvent(data []byte, seq uint64) Event {
	var ch contracts.Change
	if err := json.Unmarshal(data, &ch); err != nil {
		return Event{Seq: seq, Changed: []string{}, Values: []Value{}, Error: Escape("not a change event: " + err.Error())}
	}
	names := columnOrder(&ch)
	row := ch.After
	if ch.Op == contracts.OpDelete {
		row = ch.Before
		if len(row) == 0 {
			row = ch.Key
		}
	}
	ev := Event{
		Seq: seq, Op: Escape(string(ch.Op)), Schema: Escape(ch.Source.Schema), Table: Escape(ch.Source.Table),
		CommitTime: ch.Source.CommitTime.UTC(), CommitLSN: Escape(ch.Source.CommitLSN),
		Key: Escape(formatRow(ch.Key, names)), Changed: []string{}, Values: []Value{},
		Line: Escape(Line(&ch, seq)),
	}
	for _, c := range changedColumns(&ch) {
		ev.Changed = append(ev.Changed, Escape(c))
	}
	for _, n := range ordered(row, names) {
		ev.Values = append(ev.Values, Value{Column: Escape(n), Value: Escape(string(row[n]))})
	}
	return ev
}

// JSONLine is a message body as one line of JSON (`rosetta tail --json`):
// compacted when it spans lines, then escaped.
func JSONLine(data []byte) string {
	line := data
	if bytes.ContainsAny(data, "\r\n") {
		var buf bytes.Buffer
		if err := json.Compact(&buf, data); err == nil {
			line = buf.Bytes()
		}
	}
	return Escape(string(line))
}

// TextLine is a message body as the escaped pretty line (`rosetta tail`).
func TextLine(data []byte, seq uint64) string {
	var ch contracts.Change
	if err := json.Unmarshal(data, &ch); err != nil {
		return Escape("#" + strconv.FormatUint(seq, 10) + "  (not a change event: " + err.Error() + ")")
	}
	return Escape(Line(&ch, seq))
}
