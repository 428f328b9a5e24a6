package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosettacdc/rosetta/pkg/dlq"
)

// DLQStats reports dead-letter depth per table; *dlq.Queue implements it.
type DLQStats interface {
	Stats(ctx context.Context, sourceID, destinationID int64) ([]dlq.TableStats, error)
}

// Poller refreshes the gauges that are read from elsewhere rather than
// recorded: pipeline consumers' pending and ack-pending counts from
// JetStream and, when a queue is given, dead-letter depth.
type Poller struct {
	M     *Metrics
	JS    jetstream.JetStream
	DLQ   DLQStats // nil: no dead-letter gauges
	Every time.Duration
	// Timeout bounds one poll (default: Every, at most 10s).
	Timeout time.Duration
	Log     *slog.Logger
}

// Run polls at once and then every p.Every until ctx ends. A failed poll is
// logged at debug level and counted; the next one tries again.
func (p *Poller) Run(ctx context.Context) {
	every := p.Every
	if every <= 0 {
		every = 15 * time.Second
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = min(every, 10*time.Second)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := p.Poll(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			p.M.Error("metrics_poll", "poll_failed")
			if p.Log != nil {
				p.Log.Debug("poll consumer metrics", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll refreshes the gauges once. Series of consumers or queues that no
// longer exist are dropped.
func (p *Poller) Poll(ctx context.Context) error {
	if p.M == nil || p.JS == nil {
		return nil
	}
	type consumerKey struct{ stream, consumer string }
	type dlqKey struct{ source, destination int64 }
	pending := map[consumerKey][2]uint64{}
	dests := map[dlqKey]bool{}

	names := p.JS.StreamNames(ctx)
	var streams []string
	for name := range names.Name() {
		if strings.HasPrefix(name, "ROSETTA_CDC_") {
			streams = append(streams, name)
		}
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("list streams: %w", err)
	}
	for _, name := range streams {
		s, err := p.JS.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		var sourceID int64
		fmt.Sscanf(name, "ROSETTA_CDC_%d", &sourceID)
		list := s.ListConsumers(ctx)
		for ci := range list.Info() {
			var pipelineID, destinationID int64
			if n, _ := fmt.Sscanf(ci.Name, "pipeline_%d_dest_%d", &pipelineID, &destinationID); n != 2 {
				continue // a tap or `rosetta tail`, not a pipeline
			}
			pending[consumerKey{name, ci.Name}] = [2]uint64{ci.NumPending, uint64(ci.NumAckPending)}
			dests[dlqKey{sourceID, destinationID}] = true
		}
		if err := list.Err(); err != nil {
			return fmt.Errorf("consumers of %s: %w", name, err)
		}
	}
	depth := map[[3]string]int64{}
	if p.DLQ != nil {
		for k := range dests {
			stats, err := p.DLQ.Stats(ctx, k.source, k.destination)
			if err != nil {
				return fmt.Errorf("dlq depth: %w", err)
			}
			for _, st := range stats {
				depth[[3]string{id(k.source), id(k.destination), st.Table}] = st.Depth
			}
		}
	}

	// Swap in the new values; series absent now are removed.
	resetTo(p.M.pending, func(set func(float64, ...string)) {
		for k, v := range pending {
			set(float64(v[0]), k.stream, k.consumer)
		}
	})
	resetTo(p.M.ackPending, func(set func(float64, ...string)) {
		for k, v := range pending {
			set(float64(v[1]), k.stream, k.consumer)
		}
	})
	if p.DLQ != nil {
		resetTo(p.M.dlqDepth, func(set func(float64, ...string)) {
			for k, v := range depth {
				set(float64(v), k[0], k[1], k[2])
			}
		})
	}
	return nil
}

// resetTo replaces every series of g with those fill sets.
func resetTo(g *prometheus.GaugeVec, fill func(set func(v float64, labels ...string))) {
	g.Reset()
	fill(func(v float64, labels ...string) { g.WithLabelValues(labels...).Set(v) })
}
