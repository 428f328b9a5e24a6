package capture

import (
	"fmt"

	"github.com/rosettacdc/rosetta/contracts"
)

// batcher cuts a transaction's changes into version 2 messages: the
// changes of one table on one partition (a group), in transaction order,
// at most contracts.ChunkChanges of them and contracts.ChunkBytes of
// entries per message, and all with the same columns. Each change is
// encoded into its group's open message as it arrives; the message goes
// out when the next change would not fit (a group's chunk is full) or at
// the transaction's commit (flush). Memory is thus bounded by the chunk
// size times the groups open, and nothing waits on a timer: a single-row
// transaction is one message of one change, published at its commit.
//
// The cut depends on the WAL alone (change counts, the changes' encoded
// bytes, column changes), never on timing or settings: a capture that
// restarts reads the same transaction again and cuts it into the same
// messages with the same Nats-Msg-Id (contracts.MessageID, chunk counted
// per group from 0 within the transaction), which JetStream's duplicate
// window drops. For that reason the byte limit counts the entries only,
// not the message's head: the head's columns come partly from the source's
// catalog as read when the relation was described (type names, a column's
// existing value), which a later session may read differently. A message
// of several changes is therefore at most ChunkBytes plus its head.
//
// It is owned by the stream's goroutine.
type batcher struct {
	partitions int // the source's partition count (contracts.Partition)

	groups map[cdcTable]*group
	order  []*group // the transaction's groups, in the order of their first change
	ready  []outMsg // closed messages, to publish in this order
	spare  []byte   // an entry moved to the next message
	hint   int      // capacity for the next message body

	// subjects are the session's: the partition count is the applied
	// spec's, and the API refuses to change it while the source has
	// pipelines, so it is fixed while capture runs for them.
	subjects contracts.Subjects
}

// group is the open message of one table and partition of the current
// transaction.
type group struct {
	key     cdcTable
	subject string
	// head is the open message's first change without its rows: what the
	// next change must share (contracts.SameMessage) and what errors name.
	head  contracts.Change
	body  []byte // the open message, nil when none is open
	n     int    // changes in body
	size  int    // bytes of body's entries and the commas between them
	chunk int    // the open (or next) message's index in the group
}

// outMsg is one closed message, ready to publish.
type outMsg struct {
	subject, id string
	body        []byte
	first       contracts.Change // the first change, without its rows
	n           int              // changes in body
}

func newBatcher(partitions int) *batcher {
	return &batcher{partitions: partitions, groups: make(map[cdcTable]*group)}
}

// add encodes c into its group's open message. When c does not belong in
// it (other columns, or the message is full), the open message is closed
// into ready first and c starts the group's next message.
func (b *batcher) add(c *contracts.Change) error {
	k := cdcTable{c.Source.Schema, c.Source.Table, contracts.Partition(c.Key, b.partitions)}
	g := b.groups[k]
	if g == nil {
		g = &group{key: k, subject: b.subjects.Change(c.Source.SourceID, k.schema, k.table, k.partition)}
		b.groups[k] = g
		b.order = append(b.order, g)
	}
	if g.body != nil && (g.n >= contracts.ChunkChanges || !contracts.SameMessage(&g.head, c)) {
		b.close(g)
	}
	if g.body == nil {
		if err := b.open(g, c); err != nil {
			return err
		}
	}
	mark := len(g.body)
	if g.n > 0 {
		g.body = append(g.body, ',')
	}
	g.body = contracts.AppendEntry(g.body, c)
	size := len(g.body) - mark
	if g.n > 0 && g.size+size > contracts.ChunkBytes {
		// c would pass the byte limit: it starts the next message (alone
		// if it is itself larger than the limit).
		b.spare = append(b.spare[:0], g.body[mark+1:]...)
		g.body = g.body[:mark]
		b.close(g)
		if err := b.open(g, c); err != nil {
			return err
		}
		g.body = append(g.body, b.spare...)
		size = len(b.spare)
	}
	g.n++
	g.size += size
	return nil
}

// open starts g's next message with c as its first change. The body is a
// fresh slice: once published it is the message's own (JetStream may
// resend it until acknowledged).
func (b *batcher) open(g *group, c *contracts.Change) error {
	body, err := contracts.AppendMessageHead(make([]byte, 0, max(b.hint, 512)), c)
	if err != nil {
		return fmt.Errorf("encode message of %s.%s at %s: %w", c.Source.Schema, c.Source.Table, c.Source.LSN, err)
	}
	g.head = contracts.Change{V: contracts.MessageVersion, Op: c.Op, Source: c.Source, Columns: c.Columns}
	g.body, g.n, g.size = body, 0, 0
	return nil
}

// close ends g's open message and queues it.
func (b *batcher) close(g *group) {
	body := contracts.CloseMessage(g.body)
	s := &g.head.Source
	b.ready = append(b.ready, outMsg{
		subject: g.subject,
		id:      contracts.MessageID(s.SourceID, s.CommitLSN, s.Schema, s.Table, g.key.partition, g.chunk),
		body:    body,
		first:   g.head,
		n:       g.n,
	})
	// Size the next body like this one, within the chunk limit.
	b.hint = min(len(body)+len(body)/8, contracts.ChunkBytes+contracts.ChunkBytes/8)
	g.body, g.n, g.size = nil, 0, 0
	g.chunk++
}

// commit closes every open message of the transaction, in the order of
// each group's first change, and forgets the transaction's groups.
func (b *batcher) commit() {
	for _, g := range b.order {
		if g.body != nil {
			b.close(g)
		}
	}
	clear(b.groups)
	clear(b.order)
	b.order = b.order[:0]
}

// publish hands the closed messages to fn, oldest first, and empties the
// queue (dropping its references to the bodies, which are fn's now).
func (b *batcher) publish(fn func(*outMsg) error) error {
	defer func() {
		clear(b.ready)
		b.ready = b.ready[:0]
	}()
	for i := range b.ready {
		if err := fn(&b.ready[i]); err != nil {
			return err
		}
	}
	return nil
}
