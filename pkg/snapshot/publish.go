package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
)

// Publisher publishes batches on the tables' change subjects with
// asynchronous publishes, at most window unacknowledged at a time.
type Publisher struct {
	js         jetstream.JetStream
	window     int
	ackTimeout time.Duration
	maxPayload int64
	buf        bytes.Buffer
}

// NewPublisher returns a publisher on nc. Close it when done.
func NewPublisher(nc *nats.Conn, window int, ackTimeout time.Duration) (*Publisher, error) {
	if window <= 0 {
		window = 4096
	}
	if ackTimeout <= 0 {
		ackTimeout = 30 * time.Second
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window*2))
	if err != nil {
		return nil, fmt.Errorf("jetstream publisher: %w", err)
	}
	return &Publisher{js: js, window: window, ackTimeout: ackTimeout, maxPayload: nc.MaxPayload()}, nil
}

// Close abandons pending publishes.
func (p *Publisher) Close() { p.js.CleanupPublisher() }

// MsgID is a snapshot row's Nats-Msg-Id: the same row published again by
// the same job (a batch re-read after a crash) is dropped by JetStream's
// duplicate window; past it, the sinks' version guard makes it harmless.
func MsgID(sourceID, jobID int64, key []string) string {
	return strconv.FormatInt(sourceID, 10) + ":snap:" + strconv.FormatInt(jobID, 10) + ":" + string(KeyJSON(key))
}

// PublishBatch publishes every change of b and returns once JetStream
// acknowledged all of them (the caller checkpoints only then).
func (p *Publisher) PublishBatch(ctx context.Context, jobID int64, b Batch) error {
	pending := make([]jetstream.PubAckFuture, 0, min(len(b.Changes), p.window))
	wait := func(f jetstream.PubAckFuture) error {
		t := time.NewTimer(p.ackTimeout)
		defer t.Stop()
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return fmt.Errorf("publish %s %s: %w", f.Msg().Subject, f.Msg().Header.Get(jetstream.MsgIDHeader), err)
		case <-t.C:
			return fmt.Errorf("publish %s: no ack within %s", f.Msg().Subject, p.ackTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i := range b.Changes {
		c := &b.Changes[i]
		if len(pending) >= p.window {
			if err := wait(pending[0]); err != nil {
				return err
			}
			pending = pending[1:]
		}
		p.buf.Reset()
		enc := json.NewEncoder(&p.buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(c); err != nil {
			return fmt.Errorf("encode row of %s.%s: %w", c.Source.Schema, c.Source.Table, err)
		}
		body := bytes.Clone(bytes.TrimSuffix(p.buf.Bytes(), []byte{'\n'}))
		if p.maxPayload > 0 && int64(len(body))+256 > p.maxPayload {
			return fmt.Errorf("row of %s.%s is %d bytes, more than the NATS server's max_payload (%d)",
				c.Source.Schema, c.Source.Table, len(body), p.maxPayload)
		}
		msg := nats.NewMsg(contracts.ChangeSubject(c.Source.SourceID, c.Source.Schema, c.Source.Table, 0))
		msg.Data = body
		msg.Header.Set(jetstream.MsgIDHeader, MsgID(c.Source.SourceID, jobID, b.Keys[i]))
		f, err := p.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("publish %s: %w", msg.Subject, err)
		}
		pending = append(pending, f)
	}
	for _, f := range pending {
		if err := wait(f); err != nil {
			return err
		}
	}
	return nil
}
