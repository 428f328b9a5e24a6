package sinkrunner

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/jitter"
)

// DeadLetter is one change a destination rejected for good (or a message
// that is not a change at all), with where it came from.
type DeadLetter struct {
	SourceID      int64
	PipelineID    int64
	DestinationID int64
	// Table is the source table as schema.table.
	Table string
	// Change is the decoded change; nil when it is not a valid change
	// (it failed cdc.Check, or its message did not decode).
	Change *contracts.Change
	// Body is the message body as consumed when the message holds this
	// change alone (either envelope version) or could not be read at all;
	// for one change of a message of several, that change alone as a
	// version 2 message of one change (contracts.MessageOf), which
	// cdc.Decode reads as pkg/dlq's replay does.
	Body []byte
	// MsgID identifies the change across redeliveries: contracts.MsgID of
	// the change, or stream, sequence and time of an undecodable message
	// (and the change's index in it, for an invalid change of a message
	// of several).
	MsgID string
	// Stream, StreamSeq and Subject are the message's JetStream position.
	Stream    string
	StreamSeq uint64
	Subject   string
	// Class is ErrorClass of Err.
	Class    string
	Err      error
	FailedAt time.Time
}

// DeadLetterQueue stores dead letters; pkg/dlq implements it (through the
// sink service's adapter).
//
// Contract: Add returns nil only once the letter is durably stored; the
// runner acks the letter's message only after that, so a queue that is down
// leaves the message unacked and it is retried, never lost. Add is
// idempotent per MsgID: adding the same letter again (a retry after a lost
// reply, a redelivery after a lost ack) keeps one entry.
type DeadLetterQueue interface {
	Add(ctx context.Context, l DeadLetter) error
}

// settleInvalid settles the entries bad of b, which are not a valid
// change. With a dead-letter queue it stores each alone (a change that
// failed cdc.Check, or a message whose body could not be read) and settles
// it once stored. Without one it drops them, and terminates each message
// holding no valid change, so that it stops being redelivered (a message
// with valid changes too is acked once they commit). It returns false when
// ctx ended before every one was stored.
func (r *Runner) settleInvalid(ctx context.Context, f *inFlight, b *batch, bad []int) bool {
	if r.dlq == nil {
		for _, j := range f.settle(bad) {
			m := f.msgs[j]
			if err := m.Term(); err != nil {
				r.log.Warn("terminate undecodable message", "subject", m.Subject(), "error", err)
			}
			f.done[j] = true
		}
		r.stats.update(func(s *Stats) { s.Terminated += uint64(len(bad)) })
		return true
	}
	letters := make([]DeadLetter, len(bad))
	for k, i := range bad {
		var c *contracts.Change
		if !unreadable(b.errs[i]) {
			c = &b.changes[i]
		}
		letters[k] = r.invalidLetter(f, i, c, PermanentClass(ClassUndecodable, b.errs[i]))
	}
	return r.deadLetter(ctx, f, bad, letters)
}

// letter describes change i of f's batch, c, which the destination
// rejected with err.
func (r *Runner) letter(f *inFlight, i int, c *contracts.Change, err error) DeadLetter {
	l := r.baseLetter(f, i, c, err)
	l.Change = c
	if l.SourceID == 0 {
		l.SourceID = c.Source.SourceID
	}
	l.Table = c.Source.Schema + "." + c.Source.Table
	l.MsgID = contracts.MsgID(c.Source.SourceID, c.Source.CommitLSN, c.Source.Seq)
	return l
}

// invalidLetter describes entry i of f's batch, which is not a valid
// change: c as it was read, nil when its message could not be read at all.
// Its source and table come from the subject, which capture wrote.
func (r *Runner) invalidLetter(f *inFlight, i int, c *contracts.Change, err error) DeadLetter {
	l := r.baseLetter(f, i, c, err)
	src, table := subjectTable(l.Subject)
	if l.SourceID == 0 {
		l.SourceID = src
	}
	l.Table = table
	_, stamp := position(f.msgs[f.at[i]])
	l.MsgID = "undecodable:" + l.Stream + ":" + strconv.FormatUint(l.StreamSeq, 10) + ":" + strconv.FormatInt(stamp.UnixNano(), 10)
	if j := f.at[i]; f.sizes[j] > 1 {
		l.MsgID += ":" + strconv.Itoa(i-f.first[j])
	}
	return l
}

// baseLetter is what every letter of entry i of f's batch says: where its
// message is, its body (see DeadLetter.Body; c is the entry as read, nil
// for a message that could not be read), and err.
func (r *Runner) baseLetter(f *inFlight, i int, c *contracts.Change, err error) DeadLetter {
	j := f.at[i]
	m := f.msgs[j]
	seq, _ := position(m)
	body := m.Data()
	if f.sizes[j] > 1 && c != nil {
		// One change of several: the letter holds it alone, so that
		// replaying or viewing it reads one change. Should it not encode
		// (an invalid change may not), the whole body is kept.
		if one, err := contracts.MessageOf([]contracts.Change{*c}).AppendJSON(nil); err == nil {
			body = one
		}
	}
	l := DeadLetter{
		SourceID:      r.cfg.SourceID,
		PipelineID:    r.cfg.PipelineID,
		DestinationID: r.cfg.DestinationID,
		Body:          body,
		StreamSeq:     seq,
		Subject:       m.Subject(),
		Class:         ErrorClass(err),
		Err:           err,
		FailedAt:      time.Now().UTC(),
	}
	if meta, merr := m.Metadata(); merr == nil {
		l.Stream = meta.Stream
	}
	return l
}

// deadLetter stores letters (of the changes idx of f's batch) in the
// dead-letter queue, retrying with backoff while it is unavailable, settles
// each change once its letter is stored, and acks the messages that leaves
// with every change settled. It returns false when ctx ended first: the
// messages not acked are then redelivered, fail again, and are added
// again, which the queue deduplicates by MsgID.
func (r *Runner) deadLetter(ctx context.Context, f *inFlight, idx []int, letters []DeadLetter) bool {
	stored := make([]int, 0, len(idx))
	for k, l := range letters {
		if !r.store(ctx, l) {
			r.acks.ack(ctx, f, f.settle(stored))
			r.stats.update(func(s *Stats) { s.DeadLettered += uint64(len(stored)) })
			return false
		}
		r.log.Warn("change dead-lettered", "table", l.Table, "subject", l.Subject, "stream_seq", l.StreamSeq,
			"class", l.Class, "error", l.Err)
		stored = append(stored, idx[k])
	}
	// Settled only now that every Add returned nil: the queue holds them.
	r.acks.ack(ctx, f, f.settle(stored))
	r.stats.update(func(s *Stats) { s.DeadLettered += uint64(len(stored)) })
	r.health.applied(ctx, true)
	return true
}

// store adds one letter, retrying until it is stored or ctx ends.
func (r *Runner) store(ctx context.Context, l DeadLetter) bool {
	b := r.newBackoff()
	for {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := r.dlq.Add(sctx, l)
		cancel()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		err = fmt.Errorf("store a rejected change of %s in the dead-letter queue (it stays unacked and is retried): %w", l.Table, err)
		wait := b.next()
		r.log.Error("dead-letter queue unavailable", "subject", l.Subject, "stream_seq", l.StreamSeq, "retry_in", wait, "error", err)
		r.health.failed(ctx, err, true)
		if !sleep(ctx, jitter.Spread(wait)) {
			return false
		}
	}
}

// position returns a message's stream sequence and time, zero when the
// message has no JetStream metadata.
func position(m jetstream.Msg) (uint64, time.Time) {
	meta, err := m.Metadata()
	if err != nil {
		return 0, time.Time{}
	}
	return meta.Sequence.Stream, meta.Timestamp
}

// subjectTable reads the source id and schema.table from a change subject
// (rosetta.cdc.<source>.<schema>.<table>.<partition>); "unknown" when the
// subject does not have that shape.
func subjectTable(subject string) (int64, string) {
	parts := strings.Split(subject, ".")
	if len(parts) != 6 || parts[0]+"."+parts[1] != contracts.CDCPrefix {
		return 0, "unknown"
	}
	src, _ := strconv.ParseInt(parts[2], 10, 64)
	schema, err1 := contracts.DecodeToken(parts[3])
	table, err2 := contracts.DecodeToken(parts[4])
	if err1 != nil || err2 != nil {
		return src, "unknown"
	}
	return src, schema + "." + table
}
