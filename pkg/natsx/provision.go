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
	lookup := func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, cfg.Name) }
	s, err := retryJS(ctx, lookup)
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
		s, err = retryJS(ctx, lookup)
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

// Table names a source table (contracts.Table).
type Table = contracts.Table

// ConsumerAckWait is how long a fetched, unacked change stays with one sink
// before JetStream redelivers it: after a sink crash, its in-flight batch
// waits this long before another instance (or its restart) gets it. Sinks
// mark a batch in progress every third of it while they apply or retry
// it (sinkrunner.Config.KeepAliveEvery), so a slow apply keeps its batch.
const ConsumerAckWait = 30 * time.Second

// SinkGroup is the priority group sinks fetch in (jetstream.FetchPriorityGroup).
// Pipeline consumers use the pinned-client policy on it: JetStream delivers
// one partition's changes to one sink instance at a time, the pinned one,
// and other instances' pull requests wait until the pinned one stops
// pulling for ConsumerPinnedTTL; then one of them is pinned instead.
const SinkGroup = "sinks"

// ConsumerPinnedTTL is how long a pinned sink may go without a pull request
// before JetStream unpins it: the takeover time of a partition after its
// sink dies. A sink pulls at least every pullExpiry (500 ms) while its
// batch fills; one applying a batch longer than this loses the pin, and
// another instance takes the partition's next changes while it finishes
// (the destination's version guard keeps that exact; only the one-writer
// order is given up for that moment).
const ConsumerPinnedTTL = 10 * time.Second

// PipelineConsumerConfig is the durable consumer of one partition of one
// pipeline destination, filtered to the pipeline's tables on that
// partition (every partition when the source has one: the name and filter
// consumers had before partitions, so they keep their position). It starts
// at new messages: it is created before the tables are added to the
// source's publication, so it sees every change captured for them.
// MaxDeliver is unlimited: a change is never given up on by JetStream;
// sinks dead-letter what a destination rejects.
func PipelineConsumerConfig(sourceID, pipelineID, destinationID int64, tables []Table, partition, partitions int) jetstream.ConsumerConfig {
	filters := make([]string, 0, len(tables))
	for _, t := range tables {
		if partitions <= 1 {
			filters = append(filters, contracts.TableFilter(sourceID, t.Schema, t.Name))
		} else {
			filters = append(filters, contracts.ChangeSubject(sourceID, t.Schema, t.Name, partition))
		}
	}
	desc := fmt.Sprintf("Rosetta pipeline %d to destination %d", pipelineID, destinationID)
	if partitions > 1 {
		desc += fmt.Sprintf(", partition %d of %d", partition, partitions)
	}
	return jetstream.ConsumerConfig{
		Durable:        contracts.PartitionConsumerName(pipelineID, destinationID, partition, partitions),
		Description:    desc,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ConsumerAckWait,
		MaxDeliver:     -1,
		MaxAckPending:  50000,
		FilterSubjects: filters,
		MaxWaiting:     64,
		PriorityGroups: []string{SinkGroup},
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PinnedTTL:      ConsumerPinnedTTL,
	}
}

// Unpinner returns a function releasing the pin of a consumer in SinkGroup
// (sinkrunner.Config.Unpin): its next pull request from any sink instance
// is pinned at once.
func Unpinner(js jetstream.JetStream) func(ctx context.Context, stream, consumer string) error {
	return func(ctx context.Context, stream, consumer string) error {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return fmt.Errorf("unpin %s: %w", consumer, err)
		}
		if err := s.UnpinConsumer(ctx, consumer, SinkGroup); err != nil {
			return fmt.Errorf("unpin %s: %w", consumer, err)
		}
		return nil
	}
}

// EnsurePipelineConsumers creates or updates the durable consumers of one
// pipeline destination, one per partition of the source (their filters
// follow the pipeline's tables). The source's stream must exist. A request
// that goes unanswered (sent during a leader election) is asked again, as
// a stream lookup is: once, it held capture's session setup for its whole
// 30 s deadline (issue 19). Asking again is safe: the request is idempotent.
func EnsurePipelineConsumers(ctx context.Context, js jetstream.JetStream, sourceID, pipelineID, destinationID int64, tables []Table, partitions int) error {
	if len(tables) == 0 {
		return fmt.Errorf("ensure consumers of pipeline %d destination %d: no tables", pipelineID, destinationID)
	}
	for p := range max(partitions, 1) {
		cfg := PipelineConsumerConfig(sourceID, pipelineID, destinationID, tables, p, partitions)
		ensure := func(ctx context.Context) (jetstream.Consumer, error) {
			return js.CreateOrUpdateConsumer(ctx, contracts.StreamName(sourceID), cfg)
		}
		if _, err := retryJS(ctx, ensure); err != nil {
			return fmt.Errorf("ensure consumer %s on %s: %w", cfg.Durable, contracts.StreamName(sourceID), err)
		}
	}
	return nil
}

// EnsurePipelineConsumer is EnsurePipelineConsumers for a source with one
// partition, returning its one consumer.
func EnsurePipelineConsumer(ctx context.Context, js jetstream.JetStream, sourceID, pipelineID, destinationID int64, tables []Table) (jetstream.Consumer, error) {
	if err := EnsurePipelineConsumers(ctx, js, sourceID, pipelineID, destinationID, tables, 1); err != nil {
		return nil, err
	}
	c, err := js.Consumer(ctx, contracts.StreamName(sourceID), contracts.ConsumerName(pipelineID, destinationID))
	if err != nil {
		return nil, fmt.Errorf("look up consumer %s: %w", contracts.ConsumerName(pipelineID, destinationID), err)
	}
	return c, nil
}

// ConsumerError is a failed look-up of one named consumer; a missing one
// wraps jetstream.ErrConsumerNotFound or ErrStreamNotFound.
type ConsumerError struct {
	Name string
	Err  error
}

func (e *ConsumerError) Error() string { return "consumer " + e.Name + ": " + e.Err.Error() }
func (e *ConsumerError) Unwrap() error { return e.Err }

// PipelineConsumers looks up the consumers of every partition of one
// pipeline destination, in partition order. Its error is a *ConsumerError
// naming the first that failed.
func PipelineConsumers(ctx context.Context, js jetstream.JetStream, sourceID, pipelineID, destinationID int64, partitions int) ([]jetstream.Consumer, error) {
	out := make([]jetstream.Consumer, 0, max(partitions, 1))
	for p := range max(partitions, 1) {
		name := contracts.PartitionConsumerName(pipelineID, destinationID, p, partitions)
		c, err := js.Consumer(ctx, contracts.StreamName(sourceID), name)
		if err != nil {
			return nil, &ConsumerError{Name: name, Err: err}
		}
		out = append(out, c)
	}
	return out, nil
}

// DeletePipelineConsumer removes one consumer of a pipeline destination; a
// missing consumer or stream is fine.
func DeletePipelineConsumer(ctx context.Context, js jetstream.JetStream, sourceID int64, id PipelineConsumerID) error {
	name := id.Name()
	err := js.DeleteConsumer(ctx, contracts.StreamName(sourceID), name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete consumer %s: %w", name, err)
	}
	return nil
}

// PipelineConsumerID names one consumer of a pipeline destination: its
// partition, and whether its name carries one (only with several).
type PipelineConsumerID struct {
	PipelineID    int64
	DestinationID int64
	Partition     int
	Partitioned   bool
}

// Name is the consumer's durable name.
func (id PipelineConsumerID) Name() string {
	if !id.Partitioned {
		return contracts.ConsumerName(id.PipelineID, id.DestinationID)
	}
	return contracts.PartitionConsumerName(id.PipelineID, id.DestinationID, id.Partition, contracts.MaxPartitions)
}

// PipelineConsumerIDs are the consumers a pipeline destination has with
// partitions partitions.
func PipelineConsumerIDs(pipelineID, destinationID int64, partitions int) []PipelineConsumerID {
	if partitions <= 1 {
		return []PipelineConsumerID{{PipelineID: pipelineID, DestinationID: destinationID}}
	}
	out := make([]PipelineConsumerID, partitions)
	for p := range out {
		out[p] = PipelineConsumerID{PipelineID: pipelineID, DestinationID: destinationID, Partition: p, Partitioned: true}
	}
	return out
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
		if p, d, part, ok := contracts.ParsePartitionConsumerName(n); ok {
			out = append(out, PipelineConsumerID{PipelineID: p, DestinationID: d, Partition: part,
				Partitioned: n != contracts.ConsumerName(p, d)})
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
