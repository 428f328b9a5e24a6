package snapshot

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// Widest forms of what differs between two reads of the same rows: an
// LSN (FormatLSN of the largest uint64) and a commit time (RFC 3339 with
// nanoseconds and a zone offset). The split into messages counts these
// at their widest, so it depends on the rows alone (see Encoder).
const (
	lsnWidth  = len("FFFFFFFF/FFFFFFFF")
	timeWidth = len("2006-01-02T15:04:05.999999999-07:00")
)

// Encoder turns a job's snapshot rows into version 2 change messages
// (contracts.Message): body, subject, Nats-Msg-Id and, for a job
// targeted at some destinations, contracts.DestinationsHeader. It is used
// by one goroutine: Add each row of a read batch, then Flush.
//
// A message holds rows of one table, one partition and one read batch,
// in the order added (primary key order), up to contracts.ChunkChanges
// rows and contracts.ChunkBytes bytes (less when the server's max_payload
// is smaller); a row larger than that is a message alone. Messages never
// span a Flush, so never a checkpointed batch: a job resumed from its
// checkpoint re-reads whole batches and, the rows being the same, cuts
// them into the same messages with the same ids (MsgID), which
// JetStream's duplicate window drops. The size that decides the split
// counts the consistent point and the commit time at their widest, as
// they differ between two reads of the same rows.
//
// The bytes are contracts.AppendMessageHead, AppendEntry and CloseMessage's
// (TestEncoderMatchesContracts), faster: the head is written once per
// batch, and a row's key and after are appended in the sorted column
// order computed once per table shape instead of sorting each row's map.
type Encoder struct {
	jobID      int64
	dests      string
	maxPayload int64
	budget     int // the most bytes a message of several rows holds

	// The head of the messages being built and what it was built for.
	headOf   contracts.Change // Source and Columns only
	haveHead bool
	head     []byte
	headSize int // len(head) with commit_lsn and commit_time at their widest

	// Per table shape: column names, sorted as map keys are written,
	// and each as a JSON string.
	namesOf []contracts.Column
	names   []string
	quoted  [][]byte

	// The entry prefix `{"op":…,"seq":…,"lsn":…` of entryOf's op, seq
	// and lsn (every row of a batch shares them).
	entryOf     contracts.Change
	entryPrefix []byte
	entry       []byte // the row being added

	// partitions is the source's partition count; open[p] is partition
	// p's message being built.
	partitions int
	subjects   contracts.Subjects
	open       []chunk

	done []*nats.Msg // closed since the last Flush, in the order closed
	slab []byte      // bodies are carved from it, to allocate per ~1 MiB, not per message
}

// chunk is one partition's message being built.
type chunk struct {
	body  []byte
	rows  int
	size  int      // len(body) with LSNs and commit time at their widest
	first []string // the first row's key values (text)
	sum   uint64   // keySum of the rows' keys
}

// NewEncoder returns an encoder for job jobID's rows. destinations, when
// not empty, addresses the rows to those destinations only. maxPayload is
// the NATS server's limit (0: unchecked).
func NewEncoder(jobID int64, destinations []int64, maxPayload int64) *Encoder {
	e := &Encoder{jobID: jobID, maxPayload: maxPayload, budget: contracts.ChunkBytes, partitions: 1}
	if maxPayload > 0 {
		e.budget = int(min(int64(e.budget), maxPayload-natsx.PayloadSlack))
	}
	if len(destinations) > 0 {
		e.dests = contracts.FormatDestinations(destinations)
	}
	return e
}

// SetPartitions sets the source's partition count (its "partitions"
// setting; 1 when never set): each row goes to the partition of its key,
// as capture publishes the table's changes (contracts.Partition). Messages
// being built are closed first (Flush returns them).
func (e *Encoder) SetPartitions(p int) {
	e.closeAll()
	e.partitions = max(p, 1)
	e.open = nil
	e.haveHead = false // setHead sizes open
}

// Add adds change c of the row whose primary key values are key (kept
// until Flush: do not modify it) to the message of its partition, closing
// that message first when c would take it past a chunk limit. A change of
// another table, source block or columns than the previous one closes
// every message being built.
func (e *Encoder) Add(c *contracts.Change, key []string) error {
	if !e.haveHead || !contracts.SameMessage(&e.headOf, c) {
		e.closeAll()
		if err := e.setHead(c); err != nil {
			return fmt.Errorf("encode rows of %s.%s: %w", c.Source.Schema, c.Source.Table, err)
		}
	}
	entry, err := e.appendEntry(e.entry[:0], c)
	if err != nil {
		return fmt.Errorf("encode row of %s.%s: %w", c.Source.Schema, c.Source.Table, err)
	}
	e.entry = entry
	size := len(entry) + max(0, lsnWidth-len(c.Source.LSN))
	part := contracts.Partition(c.Key, e.partitions)
	ch := &e.open[part]
	// +1 for the comma, +2 for CloseMessage's "]}".
	if ch.rows > 0 && (ch.rows >= contracts.ChunkChanges || ch.size+1+size+2 > e.budget) {
		e.close(part)
	}
	if ch.rows == 0 {
		if n := len(e.head) + len(entry) + 2; e.maxPayload > 0 && int64(n)+natsx.PayloadSlack > e.maxPayload {
			return fmt.Errorf("row of %s.%s is %d bytes, more than the NATS server's max_payload (%d)",
				c.Source.Schema, c.Source.Table, n, e.maxPayload)
		}
		ch.body = append(ch.body[:0], e.head...)
		ch.size = e.headSize
		ch.first = key
		ch.sum = keySumStart
	} else {
		ch.body = append(ch.body, ',')
		ch.size++
	}
	ch.body = append(ch.body, entry...)
	ch.size += size
	ch.rows++
	ch.sum = keySum(ch.sum, key)
	return nil
}

// Flush closes every message being built and returns the messages closed
// since the last Flush, in the order they were closed (a partition's in
// key order). The caller owns them.
func (e *Encoder) Flush() []*nats.Msg {
	e.closeAll()
	out := e.done
	e.done = nil
	return out
}

// Reset drops the messages being built and those closed since the last
// Flush (a batch whose reading failed).
func (e *Encoder) Reset() {
	for i := range e.open {
		e.open[i].rows, e.open[i].first = 0, nil
	}
	e.done = nil
}

func (e *Encoder) closeAll() {
	for p := range e.open {
		if e.open[p].rows > 0 {
			e.close(p)
		}
	}
}

// close ends partition part's message and queues it for Flush.
func (e *Encoder) close(part int) {
	ch := &e.open[part]
	ch.body = contracts.CloseMessage(ch.body)
	msg := &nats.Msg{
		Subject: e.subjects.Change(e.headOf.Source.SourceID, e.headOf.Source.Schema, e.headOf.Source.Table, part),
		Data:    e.keep(ch.body),
		Header:  nats.Header{jetstream.MsgIDHeader: {MsgID(e.headOf.Source.SourceID, e.jobID, part, ch.first, ch.rows, ch.sum)}},
	}
	if e.dests != "" {
		msg.Header[contracts.DestinationsHeader] = []string{e.dests}
	}
	e.done = append(e.done, msg)
	ch.rows, ch.first = 0, nil
}

// setHead writes the head of c's messages; no message is being built.
func (e *Encoder) setHead(c *contracts.Change) error {
	head, err := contracts.AppendMessageHead(e.head[:0], c)
	if err != nil {
		return err
	}
	e.head = head
	var ts [timeWidth]byte
	e.headSize = len(head) + max(0, lsnWidth-len(c.Source.CommitLSN)) +
		max(0, timeWidth-len(c.Source.CommitTime.AppendFormat(ts[:0], time.RFC3339Nano)))
	if len(e.open) != e.partitions {
		e.open = make([]chunk, e.partitions)
	}
	e.headOf = contracts.Change{Source: c.Source, Columns: c.Columns}
	e.haveHead = true
	if !slices.Equal(e.namesOf, c.Columns) {
		e.namesOf = c.Columns
		e.names = e.names[:0]
		for _, col := range c.Columns {
			e.names = append(e.names, col.Name)
		}
		sort.Strings(e.names) // the order contracts (and encoding/json) write map keys: bytewise
		e.quoted = e.quoted[:0]
		for _, n := range e.names {
			e.quoted = append(e.quoted, contracts.AppendJSONString(nil, []byte(n)))
		}
	}
	return nil
}

// appendEntry appends contracts.AppendEntry(c). A snapshot row (key and
// after only, every name a column) takes the fast path.
func (e *Encoder) appendEntry(dst []byte, c *contracts.Change) ([]byte, error) {
	if len(c.Before) > 0 || len(c.Unchanged) > 0 {
		return e.appendGeneral(dst, c)
	}
	if c.Op != e.entryOf.Op || c.Source.Seq != e.entryOf.Source.Seq || c.Source.LSN != e.entryOf.Source.LSN || e.entryPrefix == nil {
		// `{"op":…,"seq":…,"lsn":"…"}` less its closing brace.
		p := contracts.AppendEntry(e.entryPrefix[:0], &contracts.Change{Op: c.Op, Source: contracts.Source{Seq: c.Source.Seq, LSN: c.Source.LSN}})
		e.entryPrefix = p[:len(p)-1]
		e.entryOf = contracts.Change{Op: c.Op, Source: contracts.Source{Seq: c.Source.Seq, LSN: c.Source.LSN}}
	}
	start := len(dst)
	dst = append(dst, e.entryPrefix...)
	var ok bool
	if len(c.Key) > 0 {
		dst = append(dst, `,"key":`...)
		if dst, ok = e.appendRow(dst, c.Key); !ok {
			return e.appendGeneral(dst[:start], c)
		}
	}
	if len(c.After) > 0 {
		dst = append(dst, `,"after":`...)
		if dst, ok = e.appendRow(dst, c.After); !ok {
			return e.appendGeneral(dst[:start], c)
		}
	}
	return append(dst, '}'), nil
}

// appendGeneral is contracts.AppendEntry, refusing an empty value (not
// JSON: AppendEntry trusts its caller with values).
func (e *Encoder) appendGeneral(dst []byte, c *contracts.Change) ([]byte, error) {
	for _, r := range [...]contracts.Row{c.Key, c.Before, c.After} {
		for name, v := range r {
			if v != nil && len(v) == 0 {
				return nil, fmt.Errorf("column %s has an empty value (not JSON)", name)
			}
		}
	}
	return contracts.AppendEntry(dst, c), nil
}

// appendRow writes row as a JSON object with sorted keys. It returns false
// when row holds a name that is not a column or an empty value (then the
// caller takes the general path, which reports the latter).
func (e *Encoder) appendRow(dst []byte, row contracts.Row) ([]byte, bool) {
	dst = append(dst, '{')
	n := 0
	for i, name := range e.names {
		v, ok := row[name]
		if !ok {
			continue
		}
		if v != nil && len(v) == 0 {
			return dst, false
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e.quoted[i]...)
		dst = append(dst, ':')
		if v == nil {
			dst = append(dst, "null"...) // as contracts (and encoding/json) write a nil RawMessage
		} else {
			dst = append(dst, v...)
		}
		n++
	}
	return append(dst, '}'), n == len(row)
}

// keep copies body into the current slab: one allocation per ~1 MiB of
// bodies rather than one per message.
func (e *Encoder) keep(body []byte) []byte {
	const slabSize = 1 << 20
	if len(body) > slabSize/4 {
		return bytes.Clone(body)
	}
	if cap(e.slab)-len(e.slab) < len(body) {
		e.slab = make([]byte, 0, slabSize)
	}
	start := len(e.slab)
	e.slab = append(e.slab, body...)
	return e.slab[start:len(e.slab):len(e.slab)]
}
