package backfill

import (
	"fmt"
	"log/slog"
	"time"
)

// progressEvery is the most often a job logs its progress; it also logs
// whenever another tenth of the estimated total is copied.
const progressEvery = 2 * time.Second

// progressLog logs a job's progress at a readable cadence: rows copied,
// the estimated total, the rate since the job (re)started and an ETA.
type progressLog struct {
	log       *slog.Logger
	total     *int64
	start     time.Time
	startRows int64
	lastAt    time.Time
	lastTenth int64
	now       func() time.Time
}

func newProgressLog(log *slog.Logger, copied int64, total *int64, now func() time.Time) *progressLog {
	t := now()
	p := &progressLog{log: log, total: total, start: t, startRows: copied, lastAt: t, now: now}
	p.lastTenth = p.tenth(copied)
	return p
}

func (p *progressLog) tenth(copied int64) int64 {
	if p.total == nil || *p.total <= 0 {
		return 0
	}
	return copied * 10 / *p.total
}

// copied records that copied rows are now published and checkpointed, and
// logs when progressEvery passed or another tenth was reached.
func (p *progressLog) copied(copied int64) {
	now := p.now()
	tenth := p.tenth(copied)
	if now.Sub(p.lastAt) < progressEvery && tenth == p.lastTenth {
		return
	}
	p.lastAt, p.lastTenth = now, tenth
	attrs := []any{"rows_copied", copied}
	elapsed := now.Sub(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(copied-p.startRows) / elapsed
	}
	attrs = append(attrs, "rows_per_s", int64(rate))
	if p.total != nil && *p.total > 0 {
		attrs = append(attrs, "rows_total_estimate", *p.total, "percent", fmt.Sprintf("%.1f", min(100, 100*float64(copied)/float64(*p.total))))
		if left := *p.total - copied; left > 0 && rate > 0 {
			attrs = append(attrs, "eta", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second).String())
		}
	}
	p.log.Info("backfill progress", attrs...)
}
