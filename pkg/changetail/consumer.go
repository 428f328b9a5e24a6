package changetail

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// ErrNoStream means the source has no change stream on this NATS: it was
// never captured here (no pipeline of it ever started).
var ErrNoStream = errors.New("does not exist")

// Table is one table to follow, as the source names it (contracts.Table).
type Table = contracts.Table

// Start is where a tail begins. The zero Start follows new changes only;
// Seq and Since exclude each other (Seq wins).
type Start struct {
	Seq   uint64    // the stream sequence to start at
	Since time.Time // the first change stored at or after this time
}

// InactiveThreshold is how long JetStream keeps a tail's consumer after its
// reader stopped asking for changes. A reader cannot delete it (the tap
// user may not delete consumers), so this is what removes it; nats.go's
// default of five minutes would let closed console tabs pile up.
const InactiveThreshold = 20 * time.Second

// ConsumerConfig is the consumer a tail reads through: ephemeral and
// acknowledging nothing, so it never holds changes back from the
// pipelines' durable consumers, and JetStream removes it InactiveThreshold
// after the reader went away. Filtered to tables when some are given, else
// every table of the source.
func ConsumerConfig(sourceID int64, tables []Table, start Start) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: InactiveThreshold,
		Replicas:          1,
		MemoryStorage:     true,
	}
	for _, t := range tables {
		cfg.FilterSubjects = append(cfg.FilterSubjects, contracts.TableFilter(sourceID, t.Schema, t.Name))
	}
	switch {
	case start.Seq != 0:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = start.Seq
	case !start.Since.IsZero():
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		t := start.Since
		cfg.OptStartTime = &t
	}
	return cfg
}

// Open creates the tail's consumer (ConsumerConfig) on the source's
// stream. js needs only the tap user's rights (natsx.TapPermissions): read
// stream info, create ephemeral consumers (natsx.CreateEphemeral: not an
// ordered consumer, whose named create would also admit a durable) and
// read them. A source without a stream is ErrNoStream.
func Open(ctx context.Context, js jetstream.JetStream, sourceID int64, tables []Table, start Start) (jetstream.Consumer, error) {
	name := contracts.StreamName(sourceID)
	_, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s %w", name, ErrNoStream)
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", name, err)
	}
	cons, err := natsx.CreateEphemeral(ctx, js, name, ConsumerConfig(sourceID, tables, start))
	if err != nil {
		return nil, fmt.Errorf("consumer on %s: %w", name, err)
	}
	return cons, nil
}

// Follow hands every message of cons to fn, in stream order, until ctx
// ends (nil), fn fails (its error) or reading fails. A message may hold
// several changes: fn splits it with Changes (or TextLines, JSONLines,
// Events). fn runs on the caller's goroutine; nothing is acknowledged (the
// consumer takes no acks).
func Follow(ctx context.Context, cons jetstream.Consumer, fn func(jetstream.Msg) error) error {
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read changes: %w", err)
	}
	defer it.Stop()
	// Next blocks; stopping the iterator when ctx ends unblocks it.
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-stopped:
		}
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("read changes: %w", err)
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}
