package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
)

type percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func percentilesOf(ds []time.Duration) percentiles {
	if len(ds) == 0 {
		return percentiles{}
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := int(q*float64(len(ds))+0.5) - 1
		i = max(0, min(i, len(ds)-1))
		return float64(ds[i].Microseconds()) / 1000
	}
	return percentiles{N: len(ds), P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: float64(ds[len(ds)-1].Microseconds()) / 1000}
}

type latencyPhase struct {
	// Method is "server" (generated inside PostgreSQL, stamped by the
	// destination) or "client" (16 client connections, a poller).
	Method            string      `json:"method"`
	OfferedPerSecond  float64     `json:"offered_per_second"`
	AchievedPerSecond float64     `json:"achieved_per_second"`
	Seconds           float64     `json:"seconds"`
	Issued            int         `json:"issued"`
	NotVisible        int         `json:"not_visible_after_30s"`
	EndToEnd          percentiles `json:"commit_to_destination"`
	Ack               percentiles `json:"commit_to_jetstream_ack"`
	// CPUMicrosPerTx is rosetta dev's CPU time over the phase per
	// transaction offered (server method).
	CPUMicrosPerTx float64 `json:"rosetta_dev_cpu_us_per_transaction,omitempty"`
}

type latencyResult struct {
	Method       string         `json:"method"`
	ServerMethod string         `json:"server_method"`
	Phases       []latencyPhase `json:"phases"`
	PeakRSSMB    float64        `json:"rosetta_dev_peak_rss_mb"`
	CPUSeconds   float64        `json:"rosetta_dev_cpu_seconds"`
}

const latencyMethod = "1-row insert transactions at a fixed schedule from 16 connections; each row's latency is " +
	"from its scheduled time (not its actual send time, so a generator that falls behind is charged: coordinated " +
	"omission corrected) to the start of the first destination poll (every 5 ms, primary-key lookup of the rows not " +
	"seen yet) that sees it. The JetStream segment is a change's stored timestamp in JetStream minus its source commit time."

// runLatency runs rosetta dev into PostgreSQL on a fresh slot and offers
// each load for dur.
func (b *bench) runLatency(ctx context.Context, rates []float64, dur time.Duration, methods []string) (*latencyResult, error) {
	res := &latencyResult{Method: latencyMethod, ServerMethod: serverLatencyMethod}
	const table = "bench_lat"
	tbl := pgx.Identifier{table}.Sanitize()
	if err := b.pg.exec(ctx, "src", fmt.Sprintf(tableDDL, tbl)); err != nil {
		return res, err
	}
	if err := b.pg.exec(ctx, "src", "DROP PUBLICATION IF EXISTS "+pubName); err != nil {
		return res, err
	}
	r := b.newRun("lat", "dev", "postgres", "bench_lat_slot", table)
	if err := r.configure(ctx); err != nil {
		return res, err
	}
	if err := r.start(""); err != nil {
		return res, err
	}
	defer func() {
		if ru := r.stop(); ru != nil {
			m := measure{}
			m.setUsage(ru, r.peakKB)
			res.PeakRSSMB, res.CPUSeconds = m.PeakRSSMB, m.CPUSeconds
		}
	}()
	src, err := b.pg.connect(ctx, "src")
	if err != nil {
		return res, err
	}
	defer src.Close(context.Background())
	dst, err := b.pg.connect(ctx, r.dstDB)
	if err != nil {
		return res, err
	}
	defer dst.Close(context.Background())

	// Warm up: the slot streaming and the destination table created.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var warm int64 = 0
	err = waitFor(wctx, 100*time.Millisecond, func() (bool, error) {
		if r.exited() {
			return false, fmt.Errorf("rosetta dev exited: %v\n%s", r.waitErr, r.logTail())
		}
		var active bool
		err := src.QueryRow(ctx, "SELECT coalesce((SELECT active FROM pg_replication_slots WHERE slot_name = $1), false)", r.slot).Scan(&active)
		return active, err
	})
	if err != nil {
		return res, err
	}
	// Capture made the publication and the consumer before streaming; a
	// row now reaches the destination.
	if _, err := src.Exec(ctx, "INSERT INTO "+tbl+" VALUES ($1,$2,$3,$4,$5,$6,$7,$8)", makeRow(warm, 1).values()...); err != nil {
		return res, err
	}
	if err := waitFor(wctx, 50*time.Millisecond, func() (bool, error) { return rowVisible(ctx, dst, table, warm) }); err != nil {
		return res, fmt.Errorf("warm-up row never reached the destination: %w\n%s", err, r.logTail())
	}

	// -pprof: a CPU profile of the first phase (after the warm-up).
	r.profile(b.pprofDir, b.profileSecs)
	// The destination stamps each row's arrival in a column of its own
	// (the server method); the sink writes the columns it knows.
	if _, err := dst.Exec(ctx, "ALTER TABLE "+pgx.Identifier{"public", table}.Sanitize()+
		" ADD COLUMN arrived timestamptz DEFAULT clock_timestamp()"); err != nil {
		return res, fmt.Errorf("arrival column: %w", err)
	}

	// JetStream segment: every change's stored time minus its commit time.
	js, closeNC, err := connectNATS(ctx, r.natsAddr, r.dataDir)
	if err != nil {
		return res, err
	}
	defer closeNC()
	var ackMu sync.Mutex
	var acks []ackObs
	cons, err := js.OrderedConsumer(ctx, streamName(r.srcID), jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return res, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		// source.commit_time is in both envelope versions; the changes
		// of a version 2 message share it and its stored time, so the
		// message counts once per change it holds (a version 1 message,
		// without "changes", once).
		var c struct {
			Source struct {
				CommitTime time.Time `json:"commit_time"`
			} `json:"source"`
			Changes []json.RawMessage `json:"changes"`
		}
		md, err := m.Metadata()
		if err != nil || json.Unmarshal(m.Data(), &c) != nil {
			return
		}
		ackMu.Lock()
		for range max(len(c.Changes), 1) {
			acks = append(acks, ackObs{c.Source.CommitTime, md.Timestamp})
		}
		ackMu.Unlock()
	})
	if err != nil {
		return res, err
	}
	defer cc.Stop()

	next := int64(1)
	for _, method := range methods {
		for _, rate := range rates {
			if method == "server" {
				logf("latency (generated in PostgreSQL): %.0f transactions/s for %s", rate, dur)
				p, err := b.serverLatencyPhase(ctx, r, dst, table, rate, dur, next)
				if err != nil {
					return res, err
				}
				next += int64(p.Issued) + 1
				res.Phases = append(res.Phases, p)
				logf("latency (server): %.0f/s offered, %.0f/s achieved: p50 %.1f p95 %.1f p99 %.1f max %.1f ms; %d not visible; rosetta dev %.0f CPU µs per transaction",
					p.OfferedPerSecond, p.AchievedPerSecond, p.EndToEnd.P50, p.EndToEnd.P95, p.EndToEnd.P99, p.EndToEnd.Max, p.NotVisible, p.CPUMicrosPerTx)
				time.Sleep(2 * time.Second)
				continue
			}
			if err := b.clientLatency(ctx, r, src, dst, table, rate, dur, &next, res, &ackMu, &acks); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

type ackObs struct{ commit, stored time.Time }

// clientLatency runs one client-method phase and appends it to res.
func (b *bench) clientLatency(ctx context.Context, r *rosettaRun, src, dst *pgx.Conn, table string, rate float64, dur time.Duration,
	next *int64, res *latencyResult, ackMu *sync.Mutex, acks *[]ackObs) error {
	{
		logf("latency (client): %.0f changes/s for %s", rate, dur)
		p, err := b.latencyPhase(ctx, r, src, dst, table, rate, dur, *next)
		if err != nil {
			return err
		}
		*next += int64(p.Issued) + 1
		start, end := p.start, p.end
		ackMu.Lock()
		var ds []time.Duration
		for _, a := range *acks {
			if !a.commit.Before(start) && a.commit.Before(end.Add(time.Second)) {
				ds = append(ds, a.stored.Sub(a.commit))
			}
		}
		*acks = (*acks)[:0]
		ackMu.Unlock()
		p.Ack = percentilesOf(ds)
		p.Method = "client"
		res.Phases = append(res.Phases, p.latencyPhase)
		logf("latency (client): %.0f/s offered, %.0f/s achieved: p50 %.1f p95 %.1f p99 %.1f max %.1f ms; ack p99 %.1f ms",
			p.OfferedPerSecond, p.AchievedPerSecond, p.EndToEnd.P50, p.EndToEnd.P95, p.EndToEnd.P99, p.EndToEnd.Max, p.Ack.P99)
		time.Sleep(2 * time.Second)
	}
	return nil
}

type phaseRun struct {
	latencyPhase
	start, end time.Time
}

func (b *bench) latencyPhase(ctx context.Context, r *rosettaRun, src, dst *pgx.Conn, table string, rate float64, dur time.Duration, firstID int64) (phaseRun, error) {
	n := int(rate * dur.Seconds())
	period := time.Duration(float64(time.Second) / rate)
	intended := make([]time.Time, n)
	visible := make([]time.Time, n)
	var sent atomic.Int64
	var ticket atomic.Int64
	pr := phaseRun{latencyPhase: latencyPhase{OfferedPerSecond: rate, Issued: n}}

	const workers = 16
	conns := make([]*pgx.Conn, workers)
	for i := range conns {
		c, err := b.pg.connect(ctx, "src")
		if err != nil {
			return pr, err
		}
		defer c.Close(context.Background())
		conns[i] = c
	}
	ins := "INSERT INTO " + pgx.Identifier{table}.Sanitize() + " VALUES ($1,$2,$3,$4,$5,$6,$7,$8)"
	t0 := time.Now().Add(100 * time.Millisecond)
	for i := range intended {
		intended[i] = t0.Add(time.Duration(i) * period)
	}
	pr.start = t0
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(c *pgx.Conn) {
			defer wg.Done()
			for {
				i := int(ticket.Add(1) - 1)
				if i >= n {
					return
				}
				if d := time.Until(intended[i]); d > 0 {
					time.Sleep(d)
				}
				row := makeRow(firstID+int64(i), 1)
				row.ts = intended[i]
				if _, err := c.Exec(ctx, ins, row.values()...); err != nil {
					errc <- err
					return
				}
				sent.Add(1)
			}
		}(conns[w])
	}
	genDone := make(chan struct{})
	go func() { wg.Wait(); close(genDone) }()

	// Poll the destination for the rows not seen yet.
	seen := 0
	deadline := time.Time{}
	var pending []int64
	lowest := 0 // every row below is seen
	for seen < n {
		select {
		case err := <-errc:
			return pr, fmt.Errorf("load generator: %w", err)
		default:
		}
		pollAt := time.Now()
		if deadline.IsZero() {
			select {
			case <-genDone:
				pr.end = time.Now()
				deadline = pr.end.Add(30 * time.Second)
			default:
			}
		} else if pollAt.After(deadline) {
			break
		}
		issued := min(int(ticket.Load()), n)
		pending = pending[:0]
		for i := lowest; i < issued; i++ {
			if visible[i].IsZero() {
				pending = append(pending, firstID+int64(i))
			}
		}
		if len(pending) > 0 {
			rows, err := dst.Query(ctx, "SELECT id FROM "+pgx.Identifier{"public", table}.Sanitize()+" WHERE id = ANY($1)", pending)
			if err != nil {
				return pr, err
			}
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return pr, err
				}
				if i := int(id - firstID); i >= 0 && i < n && visible[i].IsZero() {
					visible[i] = pollAt
					seen++
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return pr, err
			}
			for lowest < issued && !visible[lowest].IsZero() {
				lowest++
			}
		}
		if r.exited() {
			return pr, fmt.Errorf("rosetta dev exited: %v\n%s", r.waitErr, r.logTail())
		}
		time.Sleep(5*time.Millisecond - time.Since(pollAt))
	}
	<-genDone
	if pr.end.IsZero() {
		pr.end = time.Now()
	}
	var ds []time.Duration
	for i := range visible {
		if visible[i].IsZero() {
			pr.NotVisible++
			continue
		}
		ds = append(ds, visible[i].Sub(intended[i]))
	}
	pr.EndToEnd = percentilesOf(ds)
	last := intended[n-1]
	pr.Seconds = last.Sub(t0).Seconds()
	pr.AchievedPerSecond = float64(sent.Load()) / pr.end.Sub(t0).Seconds()
	return pr, nil
}
