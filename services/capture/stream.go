package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/pgrepl"
)

// stream is one replication session's loop: receive, decode, publish,
// track acks, confirm. Everything in it runs on the worker's goroutine.
type stream struct {
	w       *worker
	conn    *pgx.Conn                    // catalog lookups, publication changes
	rconn   *pgconn.PgConn               // replication
	pub     *natsx.Publisher[*trackedTx] // its Acks are acks.pubs
	dec     *pgrepl.Decoder
	acks    *ackTracker
	applied sourceSpec

	sentLSN    pglogrepl.LSN // last position sent to PostgreSQL
	lastStatus time.Time     // when it was sent
	lastReport time.Time     // last state report to the config store
	lastRecv   time.Time     // when the source last sent anything
	walEnd     uint64        // the server's last reported WAL end, for the lag metric
	batch      *batcher      // the open transaction's messages
	startedAt  time.Time

	// streaming is set when the server streams in-progress transactions
	// (protocol version 2): their messages are spooled until they commit.
	streaming bool
	spools    *spools
	block     *spool // the transaction of the open Stream Start .. Stop block
}

// cdcTable is a table's partition: its subject, and a group of a
// transaction's changes in one message (see batcher).
type cdcTable struct {
	schema, table string
	partition     int
}

// run streams until an error or ctx's end; on ctx's end it drains and
// returns nil.
func (s *stream) run(ctx context.Context) error {
	s.startedAt = time.Now()
	if !s.w.failing {
		s.w.report(StateRunning, "")
	}
	s.lastReport = time.Now()
	for {
		err := s.step(ctx)
		if ctx.Err() != nil {
			s.drain()
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *stream) step(ctx context.Context) error {
	select {
	case <-s.w.changed:
		if err := s.applyChangedTables(ctx); err != nil {
			return err
		}
	default:
	}
	now := time.Now()
	if err := s.acks.poll(now, s.w.cfg.AckTimeout); err != nil {
		return err
	}
	s.w.confirmed = s.acks.confirmed
	if err := s.sendStatus(now, false); err != nil {
		return err
	}
	if s.w.failing && s.recovered(now) {
		s.w.failing = false
		s.w.report(StateRunning, "")
		s.lastReport = now
	}
	if !s.w.failing && now.Sub(s.lastReport) >= s.w.cfg.StatusInterval {
		s.w.report(StateRunning, "")
		s.lastReport = now
	}

	// Wake up soon while acks are outstanding, to confirm promptly.
	wait := time.Second
	if s.acks.inFlight() > 0 {
		wait = 100 * time.Millisecond
	}
	m, ok, err := pgrepl.ReceiveMessage(ctx, s.rconn, now.Add(wait))
	if err != nil {
		return err
	}
	if !ok {
		// A live source answers every periodic status update with a
		// keepalive (sendStatus asks for one), so silence this long means
		// the connection is dead without an error: reads would wait
		// forever. Drop it; the session restarts from the confirmed LSN.
		if silent := time.Since(s.lastRecv); silent > s.w.cfg.ReceiveTimeout {
			return fmt.Errorf("replication connection silent for %s (no keepalive answered; the connection is presumed dead): reconnecting",
				silent.Round(time.Second))
		}
		return nil
	}
	s.lastRecv = time.Now()
	if k := m.Keepalive; k != nil {
		s.acks.observeIdle(k.ServerWALEnd)
		s.walEnd = uint64(k.ServerWALEnd)
		s.w.confirmed = s.acks.confirmed
		if k.ReplyRequested {
			return s.sendStatus(time.Now(), true)
		}
		return nil
	}
	s.walEnd = max(s.walEnd, uint64(m.XLogData.ServerWALEnd))
	return s.handle(ctx, m.XLogData)
}

func (s *stream) handle(ctx context.Context, x *pglogrepl.XLogData) error {
	if s.streaming && len(x.WALData) > 0 {
		if done, err := s.handleStreamed(ctx, x); done || err != nil {
			return err
		}
	}
	return s.applyRaw(ctx, x.WALStart, x.WALData)
}

// applyRaw applies one version 1 message from its bytes, received or
// replayed from a spool. Inserts, updates and deletes, most of a stream,
// are decoded straight from their bytes (no pglogrepl.Parse allocations
// per column) and need nothing else of apply.
func (s *stream) applyRaw(ctx context.Context, walStart pglogrepl.LSN, data []byte) error {
	changes, ok, err := s.dec.DecodeRowMessage(walStart, data)
	if err != nil {
		return err
	}
	if ok {
		return s.publishAll(ctx, changes)
	}
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return fmt.Errorf("parse pgoutput message at %s: %w", walStart, err)
	}
	return s.apply(ctx, walStart, msg)
}

// publishAll adds changes to the open transaction's messages and publishes
// the messages that filled up.
func (s *stream) publishAll(ctx context.Context, changes []contracts.Change) error {
	for i := range changes {
		if err := s.batch.add(&changes[i]); err != nil {
			return err
		}
	}
	return s.publishReady(ctx)
}

// publishReady publishes the messages the batcher closed, if any.
func (s *stream) publishReady(ctx context.Context) error {
	if len(s.batch.ready) == 0 {
		return nil
	}
	return s.batch.publish(func(m *outMsg) error { return s.publish(ctx, m) })
}

// apply decodes one version 1 message, received or replayed from a spool,
// publishes its changes and tracks the transaction for the acks.
func (s *stream) apply(ctx context.Context, walStart pglogrepl.LSN, msg pglogrepl.Message) error {
	if _, ok := msg.(*pglogrepl.RelationMessage); ok {
		// Only relation messages make the decoder query the source's
		// catalog; bound that query like every other one.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.w.cfg.ReceiveTimeout)
		defer cancel()
	}
	if _, ok := msg.(*pglogrepl.BeginMessage); ok {
		s.acks.begin()
	}
	changes, err := s.dec.Decode(ctx, walStart, msg)
	if err != nil {
		return err
	}
	if rel, ok := msg.(*pglogrepl.RelationMessage); ok && s.w.log.Enabled(ctx, slog.LevelDebug) {
		// Schema changes reach capture only as these descriptions: the
		// one place to see what capture knew of a table, and when.
		names := make([]string, len(rel.Columns))
		for i, c := range rel.Columns {
			names[i] = c.Name
		}
		s.w.log.Debug("relation described", "table", rel.Namespace+"."+rel.RelationName, "relation_id", rel.RelationID,
			"columns", names, "wal_start", walStart)
	}
	if unsent := s.dec.TakeUnsentValues(); len(unsent) > 0 {
		s.w.backfillUnsent(ctx, s.applied, unsent)
	}
	if err := s.publishAll(ctx, changes); err != nil {
		return err
	}
	if c, ok := msg.(*pglogrepl.CommitMessage); ok {
		// Every message of the transaction is published before its commit
		// is tracked: the transaction's end becomes confirmable once all
		// of them (and all earlier publishes) are acknowledged; see
		// ackTracker.advance.
		s.batch.commit()
		if err := s.publishReady(ctx); err != nil {
			return err
		}
		if err := s.acks.commit(c.TransactionEndLSN); err != nil {
			return err
		}
	}
	return nil
}

// recovered reports whether this session, started after a failed one, has
// shown that the failure is behind it: JetStream stored a publish (an ack
// as a duplicate of what an earlier session published says nothing), or
// the session ran one status interval without an error (a quiet source
// has nothing to publish). Until then the source keeps its ERROR state: a
// session that reconnects, re-publishes what the stream already holds and
// is refused again (a full stream) would otherwise flash RUNNING at every
// retry.
func (s *stream) recovered(now time.Time) bool {
	return s.acks.stored > 0 || now.Sub(s.startedAt) >= s.w.cfg.StatusInterval
}

// handleStreamed takes the messages of streamed transactions (protocol
// version 2): Stream Start/Stop/Commit/Abort, and every message inside a
// Stream Start .. Stream Stop block, which goes to its transaction's spool.
// It reports false for the rest, which are version 1-shaped (whole
// transactions, Begin .. Commit, between the blocks).
func (s *stream) handleStreamed(ctx context.Context, x *pglogrepl.XLogData) (bool, error) {
	data := x.WALData
	typ := pglogrepl.MessageType(data[0])
	switch typ {
	case pglogrepl.MessageTypeStreamStart, pglogrepl.MessageTypeStreamStop,
		pglogrepl.MessageTypeStreamCommit, pglogrepl.MessageTypeStreamAbort:
	default:
		if s.block == nil {
			return false, nil
		}
		switch typ {
		case pglogrepl.MessageTypeRelation, pglogrepl.MessageTypeType, pglogrepl.MessageTypeInsert,
			pglogrepl.MessageTypeUpdate, pglogrepl.MessageTypeDelete, pglogrepl.MessageTypeTruncate,
			pglogrepl.MessageTypeMessage:
			if len(data) < 5 {
				return true, fmt.Errorf("streamed message %q at %s has no transaction id", typ, x.WALStart)
			}
			subxid := binary.BigEndian.Uint32(data[1:5])
			return true, s.block.append(subxid, x.WALStart, data[0], data[5:])
		}
		// Origin, the only other message of a block, carries nothing the
		// decoder uses (and no transaction id).
		return true, nil
	}
	m, err := pglogrepl.ParseV2(data, false)
	if err != nil {
		return true, fmt.Errorf("parse pgoutput message %q at %s: %w", typ, x.WALStart, err)
	}
	switch m := m.(type) {
	case *pglogrepl.StreamStartMessageV2:
		if s.block != nil {
			return true, fmt.Errorf("stream start of transaction %d inside the block of %d", m.Xid, s.block.xid)
		}
		sp, created, err := s.spools.start(m.Xid, m.FirstSegment == 1)
		if err != nil {
			return true, err
		}
		if created {
			s.w.log.Info("transaction streaming before its commit", "xid", m.Xid, "spool", sp.path)
		}
		s.block = sp
	case *pglogrepl.StreamStopMessageV2:
		s.block = nil
	case *pglogrepl.StreamAbortMessageV2:
		if s.block != nil {
			return true, fmt.Errorf("stream abort of transaction %d inside a stream block", m.Xid)
		}
		sp, err := s.spools.abort(m.Xid, m.SubXid)
		if err != nil {
			return true, err
		}
		if sp != nil {
			s.w.log.Info("streamed transaction rolled back", "xid", m.Xid, "spooled_messages", sp.n, "spool_bytes", sp.size)
		}
	case *pglogrepl.StreamCommitMessageV2:
		if s.block != nil {
			return true, fmt.Errorf("stream commit of transaction %d inside a stream block", m.Xid)
		}
		return true, s.replay(ctx, m)
	}
	return true, nil
}

// replay publishes a streamed transaction at its commit, exactly as if it
// had arrived whole: Begin (its final LSN is the commit LSN, so changes get
// the same commit LSN and seq as unstreamed), the spooled messages in
// order, Commit. The changes go through the same batcher as an unstreamed
// transaction's, so they are cut into the same messages with the same
// Nats-Msg-Id. Consumers see nothing of it before this.
func (s *stream) replay(ctx context.Context, m *pglogrepl.StreamCommitMessageV2) error {
	sp := s.spools.take(m.Xid)
	if sp == nil {
		return fmt.Errorf("stream commit of transaction %d, which this session did not see streamed", m.Xid)
	}
	defer func() {
		if err := sp.remove(); err != nil {
			s.w.log.Warn("remove spool", "xid", m.Xid, "spool", sp.path, "error", err)
		}
	}()
	begin := &pglogrepl.BeginMessage{FinalLSN: m.CommitLSN, CommitTime: m.CommitTime, Xid: m.Xid}
	if err := s.apply(ctx, m.CommitLSN, begin); err != nil {
		return err
	}
	i := 0
	err := sp.replay(func(walStart pglogrepl.LSN, data []byte) error {
		if err := s.applyRaw(ctx, walStart, data); err != nil {
			return fmt.Errorf("replay streamed transaction %d: %w", m.Xid, err)
		}
		// A long replay reads nothing from the source: keep taking acks in
		// and keep the status updates going, or wal_sender_timeout would
		// end the connection.
		if i++; i%1024 == 0 {
			now := time.Now()
			if err := s.acks.poll(now, s.w.cfg.AckTimeout); err != nil {
				return err
			}
			s.w.confirmed = s.acks.confirmed
			return s.sendStatus(now, false)
		}
		return nil
	})
	if err != nil {
		return err
	}
	commit := &pglogrepl.CommitMessage{CommitLSN: m.CommitLSN, TransactionEndLSN: m.TransactionEndLSN, CommitTime: m.CommitTime}
	if err := s.apply(ctx, m.CommitLSN, commit); err != nil {
		return err
	}
	// The time spent replaying is not silence of the source.
	s.lastRecv = time.Now()
	s.w.cfg.Metrics.TransactionStreamed(s.w.id)
	s.w.log.Info("streamed transaction committed", "xid", m.Xid, "commit_lsn", m.CommitLSN,
		"spooled_messages", sp.n, "spool_bytes", sp.size)
	return nil
}

// publish sends one message of a transaction's changes (see batcher) with
// its deterministic Nats-Msg-Id, so that a message published again after a
// restart is dropped by JetStream's duplicate window (and, past it, its
// changes by the sinks' version guard). The publish window counts
// messages.
func (s *stream) publish(ctx context.Context, m *outMsg) error {
	tx := s.acks.publishing()
	if tx == nil {
		return errNoOpenTx(m.subject + " " + m.id)
	}
	msg := &nats.Msg{Subject: m.subject, Data: m.body, Header: nats.Header{jetstream.MsgIDHeader: []string{m.id}}}
	src := &m.first.Source
	if err := s.pub.Publish(ctx, msg, tx); err != nil {
		var big *natsx.PayloadError
		switch {
		case !errors.As(err, &big):
			return err
		case m.n == 1:
			return fmt.Errorf("change of %s.%s at %s is %d bytes, more than the NATS server's max_payload (%d): raise max_payload",
				src.Schema, src.Table, src.LSN, big.Size, big.MaxPayload)
		default:
			return fmt.Errorf("message of %d changes of %s.%s from %s is %d bytes, more than the NATS server's max_payload (%d): raise max_payload (capture cuts messages of several changes at %d bytes of changes, plus the columns)",
				m.n, src.Schema, src.Table, src.LSN, big.Size, big.MaxPayload, contracts.ChunkBytes)
		}
	}
	for range m.n {
		s.w.cfg.Metrics.ChangePublished(src.SourceID, src.Schema, src.Table)
	}
	return nil
}

// sendStatus confirms s.acks.confirmed to PostgreSQL when one is due: at
// least every StandbyInterval, after the position advanced (at most every
// ConfirmInterval), or when forced (a keepalive asked for a reply).
func (s *stream) sendStatus(now time.Time, force bool) error {
	c := s.acks.confirmed
	since := now.Sub(s.lastStatus)
	periodic := since >= s.w.cfg.StandbyInterval
	due := periodic || (c > s.sentLSN && since >= s.w.cfg.ConfirmInterval)
	if !force && !due {
		return nil
	}
	// The periodic update asks for a keepalive in reply, so that a live
	// connection never stays silent longer than StandbyInterval (see
	// ReceiveTimeout). A forced one answers a keepalive and must not.
	ctx, cancel := context.WithTimeout(context.Background(), s.w.cfg.ReceiveTimeout)
	defer cancel()
	// Only acknowledged positions get here: c comes from the ack tracker.
	if err := pgrepl.SendStatus(ctx, s.rconn, c, periodic && !force); err != nil {
		return err
	}
	s.sentLSN, s.lastStatus = c, now
	s.w.cfg.Metrics.SlotConfirmed(s.w.id, uint64(c), s.walEnd)
	return nil
}

func (s *stream) applyChangedTables(ctx context.Context) error {
	spec := s.w.currentSpec()
	if sameTables(spec, s.applied) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.w.cfg.ReceiveTimeout)
	defer cancel()
	if err := s.w.applyTables(ctx, s.conn, spec); err != nil {
		return err
	}
	s.applied = spec
	s.batch.partitions = spec.Source.Partitions
	s.w.removeStaleConsumers(ctx, spec)
	s.w.log.Info("capture tables changed", "tables", len(spec.Tables), "consumers", len(spec.Consumers))
	return nil
}

// drain runs when the worker stops: no more reading; wait up to
// DrainTimeout for the outstanding acks, then tell PostgreSQL what was
// acknowledged.
func (s *stream) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), s.w.cfg.DrainTimeout)
	defer cancel()
	for s.acks.inFlight() > 0 {
		if err := s.acks.waitOldest(ctx, s.w.cfg.AckTimeout); err != nil {
			s.w.log.Warn("stopping with unacknowledged changes; they will be sent again", "error", err,
				"in_flight", s.acks.inFlight())
			break
		}
	}
	s.w.confirmed = s.acks.confirmed
	if err := s.sendStatus(time.Now(), true); err != nil {
		s.w.log.Warn("final status update", "error", err)
	}
}
