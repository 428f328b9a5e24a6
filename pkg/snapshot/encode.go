package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
)

// Encoder turns a job's snapshot rows into the messages published for
// them: body, subject, Nats-Msg-Id and, for a job targeted at some
// destinations, contracts.DestinationsHeader. It is used by one goroutine.
//
// Every row of a batch shares v, op, source and columns, so the encoder
// marshals that part once per batch and appends only key and after per
// row, in the order encoding/json would write them (map keys sorted), so
// the bytes are exactly json.Marshal's (TestEncoderMatchesEncodingJSON).
// This replaced a reflective json.Encoder per row, which was the worker's
// largest CPU cost (docs/backfill.md, Measurements).
type Encoder struct {
	jobID      int64
	dests      string
	maxPayload int64

	// What the cached prefix was built for.
	v      int
	src    contracts.Source
	cols   []contracts.Column
	prefix []byte   // `{"v":1,…,"columns":[…]` without the closing brace
	names  []string // column names, sorted as encoding/json sorts map keys
	quoted [][]byte // names[i] as a JSON string

	// partitions is the source's partition count; subjects[p] is the
	// subject of partition p of subjectOf's table, built when first used.
	partitions int
	subjects   []string
	subjectOf  contracts.Source // the source, schema and table of subjects

	scratch bytes.Buffer
	chunk   []byte // bodies are carved from it, to allocate per batch, not per row
}

// NewEncoder returns an encoder for job jobID's rows. destinations, when
// not empty, addresses the rows to those destinations only. maxPayload is
// the NATS server's limit (0: unchecked).
func NewEncoder(jobID int64, destinations []int64, maxPayload int64) *Encoder {
	e := &Encoder{jobID: jobID, maxPayload: maxPayload}
	if len(destinations) > 0 {
		e.dests = contracts.FormatDestinations(destinations)
	}
	return e
}

// SetPartitions sets the source's partition count (its "partitions"
// setting; 1 when never set): each row goes to the partition of its key,
// as capture publishes the table's changes (contracts.Partition).
func (e *Encoder) SetPartitions(p int) {
	e.partitions = max(p, 1)
	e.subjects = nil
}

// Encode returns the message for change c of the row whose primary key
// values are key.
func (e *Encoder) Encode(c *contracts.Change, key []string) (*nats.Msg, error) {
	body, err := e.body(c)
	if err != nil {
		return nil, fmt.Errorf("encode row of %s.%s: %w", c.Source.Schema, c.Source.Table, err)
	}
	if e.maxPayload > 0 && int64(len(body))+256 > e.maxPayload {
		return nil, fmt.Errorf("row of %s.%s is %d bytes, more than the NATS server's max_payload (%d)",
			c.Source.Schema, c.Source.Table, len(body), e.maxPayload)
	}
	if e.subjects == nil || c.Source.SourceID != e.subjectOf.SourceID || c.Source.Schema != e.subjectOf.Schema || c.Source.Table != e.subjectOf.Table {
		e.subjects = make([]string, max(e.partitions, 1))
		e.subjectOf = c.Source
	}
	part := contracts.Partition(c.Key, e.partitions)
	if e.subjects[part] == "" {
		e.subjects[part] = contracts.ChangeSubject(c.Source.SourceID, c.Source.Schema, c.Source.Table, part)
	}
	msg := &nats.Msg{
		Subject: e.subjects[part],
		Data:    body,
		Header:  nats.Header{jetstream.MsgIDHeader: {MsgID(c.Source.SourceID, e.jobID, key)}},
	}
	if e.dests != "" {
		msg.Header[contracts.DestinationsHeader] = []string{e.dests}
	}
	return msg, nil
}

// body is json.Marshal(c) without HTML escaping.
func (e *Encoder) body(c *contracts.Change) ([]byte, error) {
	if c.Before != nil || c.Unchanged != nil || len(c.Columns) == 0 {
		// Not the shape of a snapshot row: the general path.
		return e.marshal(c)
	}
	if c.V != e.v || c.Source != e.src || !slices.Equal(c.Columns, e.cols) {
		if err := e.cache(c); err != nil {
			return nil, err
		}
	}
	b := &e.scratch
	b.Reset()
	b.Write(e.prefix)
	if len(c.Key) > 0 {
		b.WriteString(`,"key":`)
		if !e.appendRow(c.Key) {
			return e.marshal(c)
		}
	}
	if len(c.After) > 0 {
		b.WriteString(`,"after":`)
		if !e.appendRow(c.After) {
			return e.marshal(c)
		}
	}
	b.WriteByte('}')
	return e.keep(b.Bytes()), nil
}

// appendRow writes row as a JSON object with sorted keys. It returns false
// when row holds a name that is not a column, or an empty value (then the
// caller marshals the change the general way).
func (e *Encoder) appendRow(row contracts.Row) bool {
	b := &e.scratch
	b.WriteByte('{')
	n := 0
	for i, name := range e.names {
		v, ok := row[name]
		if !ok {
			continue
		}
		if v != nil && len(v) == 0 {
			return false // not JSON: the general path reports it
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(e.quoted[i])
		b.WriteByte(':')
		if v == nil {
			b.WriteString("null") // what encoding/json writes for a nil RawMessage
		} else {
			b.Write(v)
		}
		n++
	}
	b.WriteByte('}')
	return n == len(row)
}

// cache builds the prefix and sorted names for c's v, source and columns.
func (e *Encoder) cache(c *contracts.Change) error {
	head := contracts.Change{V: c.V, Op: c.Op, Source: c.Source, Columns: c.Columns}
	p, err := e.marshal(&head)
	if err != nil {
		return err
	}
	if len(p) == 0 || p[len(p)-1] != '}' {
		return fmt.Errorf("change envelope %q does not end with }", p)
	}
	e.prefix = p[:len(p)-1]
	e.v, e.src, e.cols = c.V, c.Source, c.Columns
	e.names = e.names[:0]
	for _, col := range c.Columns {
		e.names = append(e.names, col.Name)
	}
	sort.Strings(e.names) // encoding/json's map key order: bytewise
	e.quoted = e.quoted[:0]
	for _, n := range e.names {
		q, err := e.marshal(n)
		if err != nil {
			return err
		}
		e.quoted = append(e.quoted, q)
	}
	return nil
}

// marshal is json.Marshal without HTML escaping (as capture encodes).
func (e *Encoder) marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// keep copies body into the current chunk: one allocation per ~1 MiB of
// bodies rather than one per row.
func (e *Encoder) keep(body []byte) []byte {
	const chunkSize = 1 << 20
	if len(body) > chunkSize/4 {
		return bytes.Clone(body)
	}
	if cap(e.chunk)-len(e.chunk) < len(body) {
		e.chunk = make([]byte, 0, chunkSize)
	}
	start := len(e.chunk)
	e.chunk = append(e.chunk, body...)
	return e.chunk[start:len(e.chunk):len(e.chunk)]
}

// MsgID is a snapshot row's Nats-Msg-Id: the same row published again by
// the same job (a batch re-read after a crash) is dropped by JetStream's
// duplicate window; past it, the sinks' version guard makes it harmless.
func MsgID(sourceID, jobID int64, key []string) string {
	b := make([]byte, 0, 32+8*len(key))
	b = strconv.AppendInt(b, sourceID, 10)
	b = append(b, ":snap:"...)
	b = strconv.AppendInt(b, jobID, 10)
	b = append(b, ':')
	b = appendKeyJSON(b, key)
	return string(b)
}

// KeyJSON encodes a key's text values (the stored resume point).
func KeyJSON(key []string) json.RawMessage { return appendKeyJSON(nil, key) }

// appendKeyJSON appends json.Marshal(key). Key values are mostly numbers
// and plain text, written directly; anything needing an escape goes
// through encoding/json, so the result (part of the Nats-Msg-Id, which
// must not change between versions) is always json.Marshal's.
func appendKeyJSON(dst []byte, key []string) []byte {
	if key == nil {
		return append(dst, "null"...)
	}
	for _, k := range key {
		for i := 0; i < len(k); i++ {
			if c := k[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				b, _ := json.Marshal(key)
				return append(dst, b...)
			}
		}
	}
	dst = append(dst, '[')
	for i, k := range key {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, k...)
		dst = append(dst, '"')
	}
	return append(dst, ']')
}
