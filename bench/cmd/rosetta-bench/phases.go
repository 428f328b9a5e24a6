package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
)

// runCapture runs bin/rosetta capture until the slot's confirmed position
// reaches the backlog's end. The rate counts from when the slot became
// active (capture streaming); startup (migrations, connecting) is reported
// apart.
func (b *bench) runCapture(ctx context.Context, conn *pgx.Conn, r *rosettaRun, n int64, end pglogrepl.LSN) (measure, streamStats, error) {
	if err := r.configure(ctx); err != nil {
		return measure{}, streamStats{}, err
	}
	ws, err := b.sampleBackends(ctx, "src", walsenderQuery, r.slot)
	if err != nil {
		return measure{}, streamStats{}, err
	}
	defer ws.total()
	if err := r.start(""); err != nil {
		return measure{}, streamStats{}, err
	}
	r.profile(b.pprofDir, b.profileSecs)
	defer r.stop()
	var activeAt, ackedAt time.Time
	var js jetstream.JetStream
	var closeNC func()
	defer func() {
		if closeNC != nil {
			closeNC()
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	err = waitFor(wctx, 20*time.Millisecond, func() (bool, error) {
		if r.exited() {
			return false, fmt.Errorf("rosetta capture exited: %v\n%s", r.waitErr, r.logTail())
		}
		active, confirmed, err := r.slotState(ctx, conn)
		if err != nil {
			return false, err
		}
		if active && activeAt.IsZero() {
			activeAt = time.Now()
		}
		if !activeAt.IsZero() && ackedAt.IsZero() {
			// Every publish acknowledged: the stream (this run's alone)
			// holds every change.
			if js == nil {
				js, closeNC, _ = r.connectNATS(ctx)
			}
			if js != nil {
				if ok, err := sentinelStored(ctx, js, r.srcID); err == nil && ok {
					ackedAt = time.Now()
				}
			}
		}
		return confirmed >= end, nil
	})
	if err != nil {
		return measure{}, streamStats{}, err
	}
	doneAt := time.Now()
	wsCPU, _ := ws.total()
	m := newMeasure(n, doneAt.Sub(activeAt))
	m.Note = fmt.Sprintf("from slot active to slot confirmed; process start to slot active %.2fs; includes the default confirm delay (fsync interval + 1s)",
		activeAt.Sub(r.started).Seconds())
	if ackedAt.IsZero() {
		ackedAt = doneAt
	}
	m.AckedSeconds = ackedAt.Sub(activeAt).Seconds()
	m.AckedPerSecond = float64(n) / m.AckedSeconds
	m.WalsenderCPUPerM = perMillion(wsCPU, n)
	st := streamStats{msgs: n, bytes: 700 * n}
	if js != nil {
		if s, err := js.Stream(ctx, streamName(r.srcID)); err == nil {
			if si, err := s.Info(ctx); err == nil && si.State.Msgs > 0 {
				st = streamStats{msgs: int64(si.State.Msgs), bytes: int64(si.State.Bytes)}
			}
		}
	}
	ru := r.stop()
	m.setUsage(ru, r.peakKB)
	return m, st, nil
}

// streamStats is what a capture run stored: messages and their bytes.
type streamStats struct{ msgs, bytes int64 }

func (s streamStats) avgBytes() int {
	if s.msgs == 0 {
		return 0
	}
	return int(s.bytes / s.msgs)
}

// sentinelStored reports whether the source's stream's last message holds
// the backlog's sentinel row (id -1, the last transaction): capture
// publishes in order on one connection, so every earlier change is
// stored too.
func sentinelStored(ctx context.Context, js jetstream.JetStream, srcID int64) (bool, error) {
	s, err := js.Stream(ctx, streamName(srcID))
	if err != nil {
		return false, err
	}
	si, err := s.Info(ctx)
	if err != nil || si.State.LastSeq == 0 {
		return false, err
	}
	msg, err := s.GetMsg(ctx, si.State.LastSeq)
	if err != nil {
		return false, err
	}
	m, err := contracts.DecodeMessage(msg.Data)
	if err != nil {
		return false, err
	}
	for _, c := range m.All() {
		if string(c.Key["id"]) == "-1" {
			return true, nil
		}
	}
	return false, nil
}

// runSinkAlone runs bin/rosetta sink on the stream a capture run filled,
// from the first row visible to the sentinel visible.
func (b *bench) runSinkAlone(ctx context.Context, r *rosettaRun, dataDir string, bl *backlog) (measure, error) {
	// The capture run's configure made the destination database.
	if err := r.start(dataDir); err != nil {
		return measure{}, err
	}
	r.profile(b.pprofDir, b.profileSecs)
	defer r.stop()
	dconn, err := b.pg.connect(ctx, r.dstDB)
	if err != nil {
		return measure{}, err
	}
	defer dconn.Close(context.Background())
	var first time.Time
	wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	err = waitFor(wctx, 20*time.Millisecond, func() (bool, error) {
		if r.exited() {
			return false, fmt.Errorf("rosetta sink exited: %v\n%s", r.waitErr, r.logTail())
		}
		if first.IsZero() {
			ok, err := anyRow(ctx, dconn, r.table)
			if err != nil || !ok {
				return false, err
			}
			first = time.Now()
		}
		return rowVisible(ctx, dconn, r.table, -1)
	})
	if err != nil {
		return measure{}, err
	}
	m := newMeasure(int64(len(bl.ops)), time.Since(first))
	note, err := verifyPG(ctx, dconn, r.table, bl)
	if err != nil {
		return m, err
	}
	m.Note = "from the first row visible; " + note
	ru := r.stop()
	m.setUsage(ru, r.peakKB)
	return m, nil
}

// runEndToEnd runs bin/rosetta dev until the last change is in the
// destination: the sentinel row visible (PostgreSQL), or the consumer
// drained with everything acknowledged after commit (DuckDB, whose file
// the driver holds while batches arrive). The rate counts from when the
// slot became active; the capture rate alone is when the slot's confirmed
// position reached the end, in the same run.
func (b *bench) runEndToEnd(ctx context.Context, conn *pgx.Conn, r *rosettaRun, bl *backlog, end pglogrepl.LSN) (measure, error) {
	if err := r.configure(ctx); err != nil {
		return measure{}, err
	}
	var dconn *pgx.Conn
	var dst *cpuSampler
	if r.dest == "postgres" {
		var err error
		if dconn, err = b.pg.connect(ctx, r.dstDB); err != nil {
			return measure{}, err
		}
		defer dconn.Close(context.Background())
		if dst, err = b.sampleBackends(ctx, "src", destinationQuery, r.dstDB, int(dconn.PgConn().PID())); err != nil {
			return measure{}, err
		}
		defer dst.total()
	}
	ws, err := b.sampleBackends(ctx, "src", walsenderQuery, r.slot)
	if err != nil {
		return measure{}, err
	}
	defer ws.total()
	if err := r.start(""); err != nil {
		return measure{}, err
	}
	r.profile(b.pprofDir, b.profileSecs)
	defer r.stop()
	var activeAt, confirmedAt time.Time
	var js jetstream.JetStream
	var closeNC func()
	defer func() {
		if closeNC != nil {
			closeNC()
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	n := int64(len(bl.ops))
	err = waitFor(wctx, 20*time.Millisecond, func() (bool, error) {
		if r.exited() {
			return false, fmt.Errorf("rosetta dev exited: %v\n%s", r.waitErr, r.logTail())
		}
		active, confirmed, err := r.slotState(ctx, conn)
		if err != nil {
			return false, err
		}
		if active && activeAt.IsZero() {
			activeAt = time.Now()
		}
		if confirmed >= end && confirmedAt.IsZero() {
			confirmedAt = time.Now()
		}
		if r.dest == "postgres" {
			return rowVisible(ctx, dconn, r.table, -1)
		}
		if confirmedAt.IsZero() {
			return false, nil
		}
		if js == nil {
			if js, closeNC, err = connectNATS(ctx, r.natsAddr, r.dataDir); err != nil {
				return false, fmt.Errorf("connect to rosetta's NATS: %w", err)
			}
		}
		// The slot confirmed the end: every change is stored.
		return consumerDrained(ctx, js, r.srcID)
	})
	if err != nil {
		return measure{}, err
	}
	doneAt := time.Now()
	// Before the process stops: its connections' backends end with it.
	wsCPU, _ := ws.total()
	dstCPU, _ := dst.total()
	m := newMeasure(n, doneAt.Sub(activeAt))
	m.WalsenderCPUPerM = perMillion(wsCPU, n)
	m.DestinationCPUPerM = perMillion(dstCPU, n)
	if confirmedAt.IsZero() {
		confirmedAt = doneAt
	}
	m.CaptureInRun = confirmedAt.Sub(activeAt).Seconds()
	m.CaptureInRunPerSecond = float64(n) / m.CaptureInRun
	ru := r.stop()
	var note string
	if r.dest == "postgres" {
		note, err = verifyPG(ctx, dconn, r.table, bl)
	} else {
		note, err = b.verifyDuck(r.duckPath, r.table, bl)
	}
	if err != nil {
		return m, err
	}
	m.Note = fmt.Sprintf("from slot active (process start to slot active %.2fs); %s", activeAt.Sub(r.started).Seconds(), note)
	m.setUsage(ru, r.peakKB)
	if prof := r.profilePath(); prof != "" {
		m.NATSShare = focusShare(ctx, b.rosettaBin, prof, `github\.com/nats-io/nats-server`)
	}
	return m, nil
}
