// Package metrics holds Rosetta's Prometheus collectors. Each process builds
// one *Metrics with its own registry (never the global default registry) and
// hands it to the services that record into it; its methods are safe on a
// nil *Metrics, which records nothing, so instrumented code needs no checks.
//
// Label values are IDs and table names: their number grows with configured
// sources, pipelines and tables, never with data.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rosettacdc/rosetta/contracts"
)

const namespace = "rosetta"

// Metrics is the set of collectors of one process.
type Metrics struct {
	reg *prometheus.Registry

	captured     *prometheus.CounterVec
	streamedTxs  *prometheus.CounterVec
	slotConfirm  *prometheus.GaugeVec
	slotLag      *prometheus.GaugeVec
	applied      *prometheus.CounterVec
	batchSize    *prometheus.HistogramVec
	applyLatency *prometheus.HistogramVec
	endToEnd     *prometheus.HistogramVec
	errors       *prometheus.CounterVec
	pending      *prometheus.GaugeVec
	ackPending   *prometheus.GaugeVec
	dlqDepth     *prometheus.GaugeVec
	dlqTrimmed   *prometheus.CounterVec
	walRetained  *prometheus.GaugeVec
	walSafe      *prometheus.GaugeVec
	walStatus    *prometheus.GaugeVec
	walUp        *prometheus.GaugeVec
	lagSeconds   *prometheus.GaugeVec
	lagBytes     *prometheus.GaugeVec
	tombstones   *prometheus.GaugeVec
	collectBound *prometheus.GaugeVec
	collected    *prometheus.CounterVec
}

// New builds the collectors on a new registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	latency := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		captured: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "capture", Name: "changes_total",
			Help: "Changes capture published to JetStream, by source and table.",
		}, []string{"source_id", "table"}),
		streamedTxs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "capture", Name: "streamed_transactions_total",
			Help: "Transactions the source streamed to capture before their commit (pgoutput streaming, larger than logical_decoding_work_mem) and capture published at their commit, by source.",
		}, []string{"source_id"}),
		slotConfirm: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "capture", Name: "confirmed_lsn",
			Help: "WAL position capture last confirmed to the source's slot (as a number).",
		}, []string{"source_id"}),
		slotLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "capture", Name: "slot_lag_bytes",
			Help: "Bytes of WAL between the source server's last reported WAL end and the position capture confirmed.",
		}, []string{"source_id"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "sink", Name: "changes_applied_total",
			Help: "Changes committed to a destination, by pipeline, destination and table.",
		}, []string{"pipeline_id", "destination_id", "table"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "sink", Name: "batch_changes",
			Help:    "Changes per committed Apply.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 .. 65536
		}, []string{"pipeline_id", "destination_id"}),
		applyLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "sink", Name: "apply_seconds",
			Help:    "Duration of committed Apply calls (one destination transaction).",
			Buckets: latency,
		}, []string{"pipeline_id", "destination_id"}),
		endToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "sink", Name: "end_to_end_seconds",
			Help:    "From a change's commit on the source (commit_time) to its commit on the destination; snapshot reads excluded.",
			Buckets: latency,
		}, []string{"pipeline_id", "destination_id"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "errors_total",
			Help: "Errors by component (capture, sink, wal_monitor) and class.",
		}, []string{"component", "class"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "consumer", Name: "pending",
			Help: "Changes in the stream not yet delivered to the pipeline consumer (NumPending).",
		}, []string{"stream", "consumer"}),
		ackPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "consumer", Name: "ack_pending",
			Help: "Changes delivered to the pipeline consumer and not yet acked (NumAckPending).",
		}, []string{"stream", "consumer"}),
		dlqDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "dlq", Name: "depth",
			Help: "Dead letters waiting, by source, destination and table.",
		}, []string{"source_id", "destination_id", "table"}),
		dlqTrimmed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "dlq", Name: "trimmed_total",
			Help: "Dead letters removed by the retention (ROSETTA_DLQ_MAX_AGE, ROSETTA_DLQ_MAX_ENTRIES), by source, destination, table and reason (age or entries).",
		}, []string{"source_id", "destination_id", "table", "reason"}),
		walRetained: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "wal", Name: "retained_bytes",
			Help: "WAL the source keeps for Rosetta's slot (current WAL LSN - restart_lsn).",
		}, []string{"source_id"}),
		walSafe: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "wal", Name: "safe_wal_size_bytes",
			Help: "Bytes of WAL that can still be written before the slot is in danger of being invalidated (pg_replication_slots.safe_wal_size; absent when unlimited).",
		}, []string{"source_id"}),
		walStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "wal", Name: "status",
			Help: "1 for the slot's current wal_status (reserved, extended, unreserved, lost).",
		}, []string{"source_id", "status"}),
		walUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "wal", Name: "check_ok",
			Help: "1 when the last WAL check of the source succeeded, 0 when it failed.",
		}, []string{"source_id"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "destination", Name: "lag_seconds",
			Help: "Seconds between now and the source commit time of the newest change a pipeline destination applied; 0 when nothing is pending (computed by the API process).",
		}, []string{"pipeline_id", "destination_id"}),
		lagBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "destination", Name: "lag_bytes",
			Help: "WAL bytes between the source's newest known position and the commit LSN of the newest change a pipeline destination applied; 0 when nothing is pending (computed by the API process).",
		}, []string{"pipeline_id", "destination_id"}),
		tombstones: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "guard", Name: "tombstones",
			Help: "Tombstones a destination table keeps after the sink's last collection (docs/delivery.md), by pipeline, destination and source table.",
		}, []string{"pipeline_id", "destination_id", "table"}),
		collectBound: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "guard", Name: "collect_bound_lsn",
			Help: "Commit LSN (as a number) of the collect floor of a destination table: tombstones older than it were collected and changes older than it are refused when their key has no row.",
		}, []string{"pipeline_id", "destination_id", "table"}),
		collected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "guard", Name: "tombstones_collected_total",
			Help: "Tombstones collected, by pipeline, destination and source table.",
		}, []string{"pipeline_id", "destination_id", "table"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.captured, m.streamedTxs, m.slotConfirm, m.slotLag, m.applied, m.batchSize, m.applyLatency, m.endToEnd,
		m.errors, m.pending, m.ackPending, m.dlqDepth, m.dlqTrimmed, m.walRetained, m.walSafe, m.walStatus, m.walUp,
		m.lagSeconds, m.lagBytes, m.tombstones, m.collectBound, m.collected,
	)
	return m
}

// Registry is the process's registry (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func id(n int64) string { return strconv.FormatInt(n, 10) }

// ChangePublished counts one change capture published for schema.table.
func (m *Metrics) ChangePublished(sourceID int64, schema, table string) {
	if m == nil {
		return
	}
	m.captured.WithLabelValues(id(sourceID), schema+"."+table).Inc()
}

// TransactionStreamed counts one streamed transaction capture published.
func (m *Metrics) TransactionStreamed(sourceID int64) {
	if m == nil {
		return
	}
	m.streamedTxs.WithLabelValues(id(sourceID)).Inc()
}

// SlotConfirmed records the position capture confirmed to the source and,
// when walEnd (the server's last reported WAL end) is known, the lag.
func (m *Metrics) SlotConfirmed(sourceID int64, confirmed, walEnd uint64) {
	if m == nil {
		return
	}
	m.slotConfirm.WithLabelValues(id(sourceID)).Set(float64(confirmed))
	if walEnd != 0 {
		lag := float64(0)
		if walEnd > confirmed {
			lag = float64(walEnd - confirmed)
		}
		m.slotLag.WithLabelValues(id(sourceID)).Set(lag)
	}
}

// DLQTrimmed counts n dead letters of a table the retention removed, for
// reason "age" or "entries".
func (m *Metrics) DLQTrimmed(sourceID, destinationID int64, table, reason string, n int64) {
	if m == nil {
		return
	}
	m.dlqTrimmed.WithLabelValues(id(sourceID), id(destinationID), table, reason).Add(float64(n))
}

// Error counts one error of component, classified by class.
func (m *Metrics) Error(component, class string) {
	if m == nil {
		return
	}
	if class == "" {
		class = "unknown"
	}
	m.errors.WithLabelValues(component, class).Inc()
}

// BatchApplied records one committed Apply of changes that took took:
// changes per table, batch size, apply latency and, for each change that is
// not a snapshot read, the time since its commit on the source.
func (m *Metrics) BatchApplied(pipelineID, destinationID int64, changes []contracts.Change, took time.Duration) {
	if m == nil {
		return
	}
	p, d := id(pipelineID), id(destinationID)
	now := time.Now()
	m.batchSize.WithLabelValues(p, d).Observe(float64(len(changes)))
	m.applyLatency.WithLabelValues(p, d).Observe(took.Seconds())
	perTable := map[string]int{}
	e2e := m.endToEnd.WithLabelValues(p, d)
	for i := range changes {
		src := &changes[i].Source
		perTable[src.Schema+"."+src.Table]++
		if !src.Snapshot && changes[i].Op != contracts.OpRead && !src.CommitTime.IsZero() {
			e2e.Observe(max(0, now.Sub(src.CommitTime).Seconds()))
		}
	}
	for t, n := range perTable {
		m.applied.WithLabelValues(p, d, t).Add(float64(n))
	}
}

// ApplyFailed counts one failed Apply attempt of a sink.
func (m *Metrics) ApplyFailed(_, _ int64, class string) {
	m.Error("sink", class)
}

// TombstonesCollected records one tombstone collection of a destination
// table: the tombstones it keeps, its collect floor and how many went.
func (m *Metrics) TombstonesCollected(pipelineID, destinationID int64, table string, remaining, collected int64, floorLSN uint64) {
	if m == nil {
		return
	}
	p, d := id(pipelineID), id(destinationID)
	m.tombstones.WithLabelValues(p, d, table).Set(float64(remaining))
	m.collectBound.WithLabelValues(p, d, table).Set(float64(floorLSN))
	m.collected.WithLabelValues(p, d, table).Add(float64(collected))
}

// WALSample is one WAL check of a source (see pkg/walmonitor).
type WALSample struct {
	SourceID      int64
	RetainedBytes int64
	WALStatus     string
	SafeWALSize   *int64 // nil: unlimited (max_slot_wal_keep_size = -1)
	Err           error
}

var walStatuses = []string{"reserved", "extended", "unreserved", "lost"}

// WALChecked records a WAL check.
func (m *Metrics) WALChecked(s WALSample) {
	if m == nil {
		return
	}
	src := id(s.SourceID)
	if s.Err != nil {
		m.walUp.WithLabelValues(src).Set(0)
		m.Error("wal_monitor", "check_failed")
		return
	}
	m.walUp.WithLabelValues(src).Set(1)
	m.walRetained.WithLabelValues(src).Set(float64(s.RetainedBytes))
	if s.SafeWALSize != nil {
		m.walSafe.WithLabelValues(src).Set(float64(*s.SafeWALSize))
	} else {
		m.walSafe.DeleteLabelValues(src)
	}
	for _, st := range walStatuses {
		v := 0.0
		if st == s.WALStatus {
			v = 1
		}
		m.walStatus.WithLabelValues(src, st).Set(v)
	}
}

// DestinationLag records one pipeline destination's lag; a nil value
// (unknown) removes that series.
func (m *Metrics) DestinationLag(pipelineID, destinationID int64, seconds *float64, bytes *int64) {
	if m == nil {
		return
	}
	p, d := id(pipelineID), id(destinationID)
	if seconds != nil {
		m.lagSeconds.WithLabelValues(p, d).Set(*seconds)
	} else {
		m.lagSeconds.DeleteLabelValues(p, d)
	}
	if bytes != nil {
		m.lagBytes.WithLabelValues(p, d).Set(float64(*bytes))
	} else {
		m.lagBytes.DeleteLabelValues(p, d)
	}
}

// ResetDestinationLag removes every destination lag series (before a new
// round records the destinations that still exist).
func (m *Metrics) ResetDestinationLag() {
	if m == nil {
		return
	}
	m.lagSeconds.Reset()
	m.lagBytes.Reset()
}
