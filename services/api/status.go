package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/humanize"
	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// DefaultLagThreshold is how far behind a destination may be before it is
// LAGGING, unless Config.LagThreshold says otherwise.
const DefaultLagThreshold = 60 * time.Second

// staleProgress is how old a sink's progress report may be before its
// throughput is no longer believed: a running sink reports every second
// while its throughput changes, so an older non-zero figure is a sink that
// stopped reporting (it stopped, or cannot reach the config DB).
const staleProgress = 90 * time.Second

// lagInput is what one pipeline destination's health and lag are computed
// from.
type lagInput struct {
	// Reported is the health the sink (or the sink manager) reported, with
	// its LastError.
	Reported  configstore.Health
	LastError string
	// Paused: the pipeline is paused.
	Paused   bool
	Progress configstore.DestinationProgress
	// Pending is NumPending + NumAckPending of the destination's JetStream
	// consumer: changes in the stream it has not acked. Nil when unknown
	// (NATS did not answer, or the consumer does not exist yet).
	Pending *int64
	// OldestPending is the source commit time of the oldest change the
	// consumer has not acked; zero when unknown or nothing is pending.
	OldestPending time.Time
	// SourceLSN is the newest known WAL position of the source (see
	// configstore.LagSources); 0 when unknown.
	SourceLSN uint64
}

// lagStatus is the computed health and lag of one pipeline destination.
type lagStatus struct {
	Health configstore.Health
	// Reason says why Health is not HEALTHY; when it is, what the sink
	// notes while healthy (rows not yet completed, dead-lettered changes),
	// usually empty.
	Reason     string
	LagSeconds *float64
	LagBytes   *int64
	Pending    *int64
	Throughput float64
}

// computeLag derives health and lag. It is pure so that every rule is table
// tested:
//
//   - lag_seconds is 0 when the consumer has nothing pending: a source with
//     no new changes is not lag. Otherwise it is now minus the source commit
//     time of the oldest change not yet applied when that is known, else of
//     the newest change applied (which overstates after a long idle
//     period); unknown (nil) when neither is.
//   - lag_bytes is the source's newest known WAL position minus the commit
//     LSN of that change, 0 when nothing is pending; nil when either is
//     unknown.
//   - health is PAUSED for a paused pipeline, ERROR when the sink reports
//     one, LAGGING when lag_seconds is over threshold, UNKNOWN while no sink
//     has reported, otherwise HEALTHY, with the sink's notes as reason.
func computeLag(in lagInput, now time.Time, threshold time.Duration) lagStatus {
	out := lagStatus{Pending: in.Pending}
	if !in.Progress.At.IsZero() && now.Sub(in.Progress.At) <= staleProgress {
		out.Throughput = in.Progress.Throughput
	}
	caughtUp := in.Pending != nil && *in.Pending == 0
	switch {
	case caughtUp:
		out.LagSeconds, out.LagBytes = ptrTo(0.0), ptrTo(int64(0))
	default:
		since := in.Progress.AppliedCommitTime
		if !in.OldestPending.IsZero() {
			since = in.OldestPending
		}
		if !since.IsZero() {
			s := math.Max(0, now.Sub(since).Seconds())
			out.LagSeconds = ptrTo(math.Round(s*10) / 10)
		}
		if applied, err := contracts.ParseLSN(in.Progress.AppliedCommitLSN); err == nil && in.Progress.AppliedCommitLSN != "" && in.SourceLSN != 0 {
			b := int64(0)
			if in.SourceLSN > applied {
				b = int64(in.SourceLSN - applied)
			}
			out.LagBytes = &b
		}
	}
	behind := describeLag(out.LagSeconds, in.Pending)
	switch {
	case in.Paused || in.Reported == configstore.HealthPaused:
		out.Health = configstore.HealthPaused
		out.Reason = joinReason("the pipeline is paused", behind)
	case in.Reported == configstore.HealthError:
		out.Health = configstore.HealthError
		out.Reason = joinReason(in.LastError, behind)
	case out.LagSeconds != nil && *out.LagSeconds > threshold.Seconds():
		out.Health = configstore.HealthLagging
		out.Reason = behind
	case in.Reported == configstore.HealthUnknown || in.Reported == "":
		out.Health = configstore.HealthUnknown
		out.Reason = joinReason("no sink has reported on this destination yet", behind)
	default:
		out.Health = configstore.HealthHealthy
		// A healthy sink's notes: rows waiting for a completion
		// backfill, changes sent to the dead-letter queue.
		out.Reason = in.LastError
	}
	return out
}

// describeLag is "142 s behind, 53,000 messages pending", or the part of
// it that is known and not zero. Pending counts JetStream messages (each up
// to contracts.ChunkChanges changes of one table's transaction): counting
// their changes would mean reading every pending message.
func describeLag(seconds *float64, pending *int64) string {
	var parts []string
	switch {
	case seconds == nil || *seconds <= 0:
	case *seconds < 0.5:
		parts = append(parts, "under 1 s behind")
	default:
		parts = append(parts, humanize.Thousands(int64(math.Round(*seconds)))+" s behind")
	}
	if pending != nil && *pending > 0 {
		unit := "messages"
		if *pending == 1 {
			unit = "message"
		}
		parts = append(parts, humanize.Thousands(*pending)+" "+unit+" pending")
	}
	return strings.Join(parts, ", ")
}

func joinReason(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " (" + b + ")"
}

func ptrTo[T any](v T) *T { return &v }

// maxOldestLookups bounds the stream reads that find a consumer's oldest
// pending change: one per filter subject (table) of the consumer, or one
// over the whole source when it follows more tables than this.
const maxOldestLookups = 8

// consumerBacklog reads the pipeline destination's durable consumers, one
// per partition of the source: their pending count (NumPending +
// NumAckPending, summed), nil when NATS does not say for one of them, and
// the source commit time of the oldest change any of them has not acked,
// zero when nothing is pending or it cannot be read.
func (s *Server) consumerBacklog(ctx context.Context, sourceID, pipelineID, destinationID int64, partitions int) (*int64, time.Time) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HealthTimeout)
	defer cancel()
	cons, err := natsx.PipelineConsumers(ctx, s.js, sourceID, pipelineID, destinationID, partitions)
	if err != nil {
		if !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
			s.log.Debug("read consumer info", "pipeline", pipelineID, "destination", destinationID, "error", err)
		}
		return nil, time.Time{}
	}
	var n int64
	var oldest time.Time
	for _, c := range cons {
		ci := c.CachedInfo()
		pending := int64(ci.NumPending) + int64(ci.NumAckPending)
		if pending == 0 {
			continue
		}
		n += pending
		if t := s.oldestPending(ctx, sourceID, ci); !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
			oldest = t
		}
	}
	return &n, oldest
}

// oldestPending is the commit time of the first change after the
// consumer's ack floor that its filters select: every change before it is
// acked, so it is the oldest one the destination may not have (a later one
// may be acked already; the time is then a little older than the truth).
// Zero when it cannot be read.
func (s *Server) oldestPending(ctx context.Context, sourceID int64, ci *jetstream.ConsumerInfo) time.Time {
	stream, err := s.js.Stream(ctx, contracts.StreamName(sourceID))
	if err != nil {
		return time.Time{}
	}
	filters := ci.Config.FilterSubjects
	if ci.Config.FilterSubject != "" {
		filters = append(filters, ci.Config.FilterSubject)
	}
	if len(filters) == 0 || len(filters) > maxOldestLookups {
		filters = []string{contracts.SourceFilter(sourceID)}
	}
	var first *jetstream.RawStreamMsg
	for _, f := range filters {
		m, err := stream.GetMsg(ctx, ci.AckFloor.Stream+1, jetstream.WithGetMsgSubject(f))
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgNotFound) {
				s.log.Debug("read oldest pending change", "consumer", ci.Name, "filter", f, "error", err)
			}
			continue
		}
		if first == nil || m.Sequence < first.Sequence {
			first = m
		}
	}
	if first == nil {
		return time.Time{}
	}
	var env struct {
		Source struct {
			CommitTime time.Time `json:"commit_time"`
		} `json:"source"`
	}
	if err := json.Unmarshal(first.Data, &env); err != nil {
		return time.Time{}
	}
	return env.Source.CommitTime
}

// destinationStatuses builds the view of every state in states (all of
// pipeline p), with lag and health computed at now.
func (s *Server) destinationStatuses(ctx context.Context, p configstore.Pipeline, states []configstore.DestinationState,
	sources map[int64]configstore.LagSource, now time.Time) ([]destinationStateView, error) {
	dlqs := s.dlqSummaries(ctx, p)
	out := make([]destinationStateView, 0, len(states))
	for _, st := range states {
		v := destinationStateView{DestinationID: st.DestinationID, LastError: st.LastError, UpdatedAt: st.UpdatedAt,
			DLQ: dlqs[st.DestinationID], AppliedCommitLSN: st.Progress.AppliedCommitLSN,
			AppliedCommitTime: timePtr(st.Progress.AppliedCommitTime), LastAppliedAt: timePtr(st.LastAppliedAt)}
		if v.DLQ == nil {
			v.DLQ = &dlqSummaryView{Enabled: s.dlq != nil, Tables: []dlqTableView{}}
		}
		if d, err := s.store.GetDestination(ctx, st.DestinationID); err == nil {
			v.Name, v.Type = d.Name, d.Type
		} else if !errors.Is(err, configstore.ErrNotFound) {
			return nil, err
		}
		src := sources[p.SourceID]
		if src.LSN != 0 {
			v.SourceLSN = contracts.FormatLSN(src.LSN)
		}
		pending, oldest := s.consumerBacklog(ctx, p.SourceID, p.ID, st.DestinationID, p.SourcePartitions)
		ls := computeLag(lagInput{
			Pending: pending, OldestPending: oldest,
			Reported: st.Health, LastError: st.LastError, Paused: p.Status != configstore.StatusStart,
			Progress: st.Progress, SourceLSN: src.LSN,
		}, now, s.cfg.LagThreshold)
		v.Health, v.Reason = string(ls.Health), ls.Reason
		v.LagSeconds, v.LagBytes, v.Pending, v.Throughput = ls.LagSeconds, ls.LagBytes, ls.Pending, ls.Throughput
		out = append(out, v)
	}
	return out, nil
}

// pipelineDestinationStatus is one item of GET /status.
type pipelineDestinationStatus struct {
	PipelineID     int64  `json:"pipeline_id"`
	PipelineName   string `json:"pipeline_name"`
	PipelineStatus string `json:"pipeline_status"`
	SourceID       int64  `json:"source_id"`
	destinationStateView
}

// getStatus is GET /status: health and lag of every pipeline destination,
// a page at a time, ordered by pipeline then destination id.
func (s *Server) getStatus(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	states, total, err := s.store.ListDestinationStates(ctx, pg)
	if err != nil {
		return err
	}
	items, err := s.statusItems(ctx, states, time.Now())
	if err != nil {
		return err
	}
	return c.JSON(listBody[pipelineDestinationStatus]{Items: items, Total: total, Limit: pg.Limit, Offset: pg.Offset})
}

// statusItems computes the status of states, which may span pipelines.
func (s *Server) statusItems(ctx context.Context, states []configstore.DestinationState, now time.Time) ([]pipelineDestinationStatus, error) {
	pipelines := map[int64]configstore.Pipeline{}
	var sourceIDs []int64
	for _, st := range states {
		if _, ok := pipelines[st.PipelineID]; ok {
			continue
		}
		p, err := s.store.GetPipeline(ctx, st.PipelineID)
		if errors.Is(err, configstore.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		pipelines[p.ID] = p
		sourceIDs = append(sourceIDs, p.SourceID)
	}
	sources, err := s.store.LagSources(ctx, sourceIDs)
	if err != nil {
		return nil, err
	}
	items := []pipelineDestinationStatus{}
	for i := 0; i < len(states); {
		// states are ordered by pipeline: take one pipeline's run.
		j := i
		for j < len(states) && states[j].PipelineID == states[i].PipelineID {
			j++
		}
		p, ok := pipelines[states[i].PipelineID]
		if ok {
			views, err := s.destinationStatuses(ctx, p, states[i:j], sources, now)
			if err != nil {
				return nil, err
			}
			for _, v := range views {
				items = append(items, pipelineDestinationStatus{PipelineID: p.ID, PipelineName: p.Name,
					PipelineStatus: string(p.Status), SourceID: p.SourceID, destinationStateView: v})
			}
		}
		i = j
	}
	return items, nil
}

// LagGauges records the lag of every pipeline destination into the
// process's Prometheus gauges; *metrics.Metrics implements it.
type LagGauges interface {
	DestinationLag(pipelineID, destinationID int64, seconds *float64, bytes *int64)
	ResetDestinationLag()
}

// RunLagGauges computes every pipeline destination's lag every interval
// and records it in g, until ctx ends. A failed round is logged at debug
// level and retried at the next.
func (s *Server) RunLagGauges(ctx context.Context, g LagGauges, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.recordLag(ctx, g); err != nil && ctx.Err() == nil {
			s.log.Debug("record destination lag gauges", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) recordLag(ctx context.Context, g LagGauges) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	var all []pipelineDestinationStatus
	for off := 0; ; off += maxLimit {
		states, total, err := s.store.ListDestinationStates(ctx, configstore.Page{Limit: maxLimit, Offset: off})
		if err != nil {
			return fmt.Errorf("list destination states: %w", err)
		}
		items, err := s.statusItems(ctx, states, time.Now())
		if err != nil {
			return err
		}
		all = append(all, items...)
		if int64(off+maxLimit) >= total {
			break
		}
	}
	// Replace every series, so a removed destination's disappears.
	g.ResetDestinationLag()
	for _, it := range all {
		g.DestinationLag(it.PipelineID, it.DestinationID, it.LagSeconds, it.LagBytes)
	}
	return nil
}
