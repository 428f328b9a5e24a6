package natsx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
)

// StreamLimits bounds a source's change stream.
type StreamLimits struct {
	// MaxBytes is the stream's size limit. The stream discards nothing:
	// publishes beyond it are refused, so capture stops confirming WAL.
	MaxBytes int64
	// Duplicates is the dedup window for Nats-Msg-Id; it must outlast the
	// time between a publish and capture's restart after a crash (see
	// DefaultDuplicateWindow).
	Duplicates time.Duration
	// Replicas is how many servers hold the stream and its consumers
	// (ROSETTA_STREAM_REPLICAS): 1 on one server, 3 in a production
	// cluster. More than the cluster has is refused with
	// ErrTooManyReplicas.
	Replicas int
}

// DefaultDuplicateWindow is a source stream's dedup window when its limits
// name none (the services take theirs from settings.DuplicateWindow: 30s
// with the embedded server, this with an external one). A change capture
// publishes again after a restart is dropped if its first copy was stored
// less than this long before; it must cover the confirm lag (the ack,
// capture's confirm delay and confirm interval: seconds), capture's restart
// (backoff up to 30s, or a process restart) and, for a crash while a large
// transaction publishes, that transaction's publish time. A change outside
// it is stored twice: harmless to destinations (their version guard), seen
// twice by tapping consumers (same Nats-Msg-Id). It costs memory: the server
// keeps every id of the window in its heap, about 120 bytes each (heap
// profile of one 1M-change transaction: 116 MB), so rate x window x 120
// bytes: 10k changes/s over 2 min is 144 MB, over 10 min (the earlier
// default) 720 MB, far past rosetta dev's 192 MiB soft memory limit.
const DefaultDuplicateWindow = 2 * time.Minute

// DefaultStreamLimits are used when a field of StreamLimits is zero.
func DefaultStreamLimits() StreamLimits {
	return StreamLimits{MaxBytes: 1 << 30, Duplicates: DefaultDuplicateWindow, Replicas: 1}
}

func (l StreamLimits) withDefaults() StreamLimits {
	d := DefaultStreamLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.Duplicates <= 0 {
		l.Duplicates = d.Duplicates
	}
	if l.Replicas <= 0 {
		l.Replicas = d.Replicas
	}
	return l
}

// SourceStreamConfig is the stream of one source. Interest retention keeps a
// change until every pipeline consumer has acked it, and DiscardNew refuses
// new changes rather than dropping unconsumed ones when the stream is full.
func SourceStreamConfig(sourceID int64, lim StreamLimits) jetstream.StreamConfig {
	lim = lim.withDefaults()
	return jetstream.StreamConfig{
		Name:        contracts.StreamName(sourceID),
		Description: fmt.Sprintf("Rosetta change events of source %d", sourceID),
		Subjects:    []string{contracts.SourceFilter(sourceID)},
		Retention:   jetstream.InterestPolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    lim.MaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    lim.Replicas,
		Duplicates:  lim.Duplicates,
	}
}

// EnsureSourceStream creates or updates the stream of one source. A stream
// that already has this configuration is left alone: capture, the sinks
// and the API all ensure it, and an update racing a consumer being created
// on the same stream is a data race inside nats-server (v2.15, seen under
// the race detector), besides being a needless write of the stream's
// metadata.
func EnsureSourceStream(ctx context.Context, js jetstream.JetStream, sourceID int64, lim StreamLimits) (jetstream.Stream, error) {
	cfg := SourceStreamConfig(sourceID, lim)
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Create, not create-or-update: when two services find it missing
		// at once, the second create of the same configuration is a no-op
		// on the server, where an update would race the first one's
		// consumers. A different configuration is refused and updated below.
		s, err = js.CreateStream(ctx, cfg)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("create stream %s: %w", cfg.Name, explainReplicas(err, cfg.Replicas))
		}
		s, err = js.Stream(ctx, cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
	}
	if sameStreamConfig(s.CachedInfo().Config, cfg) {
		return s, nil
	}
	// A changed ROSETTA_STREAM_REPLICAS lands here too: JetStream moves
	// the stream, and its consumers, which inherit the stream's replica
	// count (PipelineConsumerConfig leaves theirs at zero), to that many
	// servers while it keeps serving.
	s, err = js.UpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("update stream %s: %w", cfg.Name, explainReplicas(err, cfg.Replicas))
	}
	return s, nil
}

// sameStreamConfig reports whether the stream's configuration has every
// field SourceStreamConfig sets. The server fills the fields Rosetta leaves
// at zero with its defaults, so only Rosetta's own are compared; zero
// Replicas and Duplicates mean the server's default (1, 2 min).
func sameStreamConfig(have, want jetstream.StreamConfig) bool {
	replicas := max(want.Replicas, 1)
	dup := want.Duplicates
	if dup == 0 {
		dup = 2 * time.Minute
	}
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Discard == want.Discard && have.MaxBytes == want.MaxBytes &&
		have.Storage == want.Storage && max(have.Replicas, 1) == replicas && have.Duplicates == dup
}

// DeleteSourceStream removes a source's stream; a missing stream is fine.
func DeleteSourceStream(ctx context.Context, js jetstream.JetStream, sourceID int64) error {
	err := js.DeleteStream(ctx, contracts.StreamName(sourceID))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete stream %s: %w", contracts.StreamName(sourceID), err)
	}
	return nil
}

// Table names a source table.
type Table struct {
	Schema string
	Name   string
}

// ConsumerAckWait is how long a fetched, unacked change stays with one sink
// before JetStream redelivers it: after a sink crash, its in-flight batch
// waits this long before another instance (or its restart) gets it. Sinks
// mark a batch in progress every third of it while they apply or retry
// it (sinkrunner.Config.KeepAliveEvery), so a slow apply keeps its batch.
const ConsumerAckWait = 30 * time.Second

// PipelineConsumerConfig is the durable consumer of one pipeline destination,
// filtered to the pipeline's tables. It starts at new messages: it is created
// before the tables are added to the source's publication, so it sees every
// change captured for them. MaxDeliver is unlimited: a change is never given
// up on by JetStream; sinks dead-letter what a destination rejects.
func PipelineConsumerConfig(sourceID, pipelineID, destinationID int64, tables []Table) jetstream.ConsumerConfig {
	filters := make([]string, 0, len(tables))
	for _, t := range tables {
		filters = append(filters, contracts.TableFilter(sourceID, t.Schema, t.Name))
	}
	return jetstream.ConsumerConfig{
		Durable:        contracts.ConsumerName(pipelineID, destinationID),
		Description:    fmt.Sprintf("Rosetta pipeline %d to destination %d", pipelineID, destinationID),
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ConsumerAckWait,
		MaxDeliver:     -1,
		MaxAckPending:  50000,
		FilterSubjects: filters,
		MaxWaiting:     64,
	}
}

// EnsurePipelineConsumer creates or updates the durable consumer of one
// pipeline destination (its filter follows the pipeline's tables). The
// source's stream must exist.
func EnsurePipelineConsumer(ctx context.Context, js jetstream.JetStream, sourceID, pipelineID, destinationID int64, tables []Table) (jetstream.Consumer, error) {
	if len(tables) == 0 {
		return nil, fmt.Errorf("ensure consumer of pipeline %d destination %d: no tables", pipelineID, destinationID)
	}
	cfg := PipelineConsumerConfig(sourceID, pipelineID, destinationID, tables)
	c, err := js.CreateOrUpdateConsumer(ctx, contracts.StreamName(sourceID), cfg)
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s on %s: %w", cfg.Durable, contracts.StreamName(sourceID), err)
	}
	return c, nil
}

// DeletePipelineConsumer removes the consumer of a pipeline destination; a
// missing consumer or stream is fine.
func DeletePipelineConsumer(ctx context.Context, js jetstream.JetStream, sourceID, pipelineID, destinationID int64) error {
	name := contracts.ConsumerName(pipelineID, destinationID)
	err := js.DeleteConsumer(ctx, contracts.StreamName(sourceID), name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete consumer %s: %w", name, err)
	}
	return nil
}

// PipelineConsumerID names the consumer of one pipeline destination.
type PipelineConsumerID struct {
	PipelineID    int64
	DestinationID int64
}

// ListPipelineConsumers returns the pipeline consumers on a source's stream
// (consumers of other names, such as a tap's, are left out); a missing
// stream has none.
func ListPipelineConsumers(ctx context.Context, js jetstream.JetStream, sourceID int64) ([]PipelineConsumerID, error) {
	s, err := js.Stream(ctx, contracts.StreamName(sourceID))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list consumers of %s: %w", contracts.StreamName(sourceID), err)
	}
	names := s.ConsumerNames(ctx)
	var out []PipelineConsumerID
	for n := range names.Name() {
		if p, d, ok := contracts.ParseConsumerName(n); ok {
			out = append(out, PipelineConsumerID{PipelineID: p, DestinationID: d})
		}
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("list consumers of %s: %w", contracts.StreamName(sourceID), err)
	}
	return out, nil
}

// EnsureConfigStream creates the stream of config events (kept a day; they
// are notifications, the config DB is the state).
func EnsureConfigStream(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        contracts.ConfigStreamName,
		Description: "Rosetta config change events",
		Subjects:    []string{contracts.ConfigPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      24 * time.Hour,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", contracts.ConfigStreamName, err)
	}
	return nil
}

// PublishConfigEvent publishes ev and waits for JetStream's ack.
func PublishConfigEvent(ctx context.Context, js jetstream.JetStream, ev contracts.ConfigEvent) error {
	if ev.At.IsZero() {
		ev.At = time.Now().UTC()
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode config event: %w", err)
	}
	if _, err := js.Publish(ctx, ev.Subject(), body); err != nil {
		return fmt.Errorf("publish config event %s: %w", ev.Subject(), err)
	}
	return nil
}

// WatchConfig calls fn for every config event published from now on, until
// ctx ends. Events are hints to reconcile; a missed one is caught by the
// caller's periodic reconcile. It does not create the config stream (a
// sink's NATS user may not): the API and capture do (EnsureConfigStream);
// until then it fails and the caller retries.
func WatchConfig(ctx context.Context, js jetstream.JetStream, fn func(contracts.ConfigEvent)) error {
	cons, err := js.OrderedConsumer(ctx, contracts.ConfigStreamName, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("watch config events: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var ev contracts.ConfigEvent
		if err := json.Unmarshal(m.Data(), &ev); err == nil {
			fn(ev)
		}
	})
	if err != nil {
		return fmt.Errorf("watch config events: %w", err)
	}
	go func() {
		<-ctx.Done()
		cc.Stop()
	}()
	return nil
}
