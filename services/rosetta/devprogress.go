package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/humanize"
)

// progressPrefix starts every progress line of `rosetta dev`, so a person
// tells them from log lines on the same stderr.
const progressPrefix = "rosetta dev: "

// devStore is what the progress watcher reads; *configstore.Store
// implements it.
type devStore interface {
	ListSources(ctx context.Context, p configstore.Page) ([]configstore.Source, int64, error)
	SourceStateOf(ctx context.Context, sourceID int64) (configstore.SourceState, error)
	ListAllPipelines(ctx context.Context) ([]configstore.Pipeline, error)
	ListBackfillJobs(ctx context.Context, pipelineID int64, p configstore.Page) ([]configstore.BackfillJob, int64, error)
	ListDestinationStates(ctx context.Context, p configstore.Page) ([]configstore.DestinationState, int64, error)
	GetDestination(ctx context.Context, id int64) (configstore.Destination, error)
}

// devProgress prints what `rosetta dev` is doing as lines a person reads:
// capture starting per source, snapshot and backfill progress with rate
// and ETA, the first changes reaching each destination, and destinations
// failing and recovering. It polls the config database, where every
// service reports, so it shows the same thing whichever process did the
// work.
type devProgress struct {
	store devStore
	out   io.Writer
	now   func() time.Time

	sources map[int64]string       // last state printed per source
	jobs    map[int64]*jobProgress // jobs seen not finished
	done    map[int64]bool         // finished jobs already printed (or finished before start)
	flowing map[[2]int64]bool      // pipeline destinations that applied changes
	health  map[[2]int64]string    // last health printed per pipeline destination
	first   bool
}

type jobProgress struct {
	firstAt   time.Time
	firstRows int64
	lastRows  int64
}

func newDevProgress(store devStore, out io.Writer) *devProgress {
	return &devProgress{store: store, out: out, now: time.Now, sources: map[int64]string{}, jobs: map[int64]*jobProgress{},
		done: map[int64]bool{}, flowing: map[[2]int64]bool{}, health: map[[2]int64]string{}, first: true}
}

func (d *devProgress) printf(format string, args ...any) {
	fmt.Fprintf(d.out, progressPrefix+format+"\n", args...)
}

// run polls every interval until ctx ends. A failed poll prints nothing:
// the services log their own errors.
func (d *devProgress) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, every+5*time.Second)
		_ = d.poll(pctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// poll reads the reports once and prints what changed since the last one.
func (d *devProgress) poll(ctx context.Context) error {
	sources, _, err := d.store.ListSources(ctx, configstore.Page{Limit: 500})
	if err != nil {
		return err
	}
	for _, src := range sources {
		st, err := d.store.SourceStateOf(ctx, src.ID)
		if err != nil {
			continue // not reported yet
		}
		key := st.State + "\x00" + st.LastError
		if d.sources[src.ID] == key {
			continue
		}
		d.sources[src.ID] = key
		switch st.State {
		case "RUNNING":
			d.printf("capture running for source %d (%s, database %s)", src.ID, src.Name, src.Database)
		case "ERROR":
			d.printf("capture of source %d (%s) failed, retrying: %s", src.ID, src.Name, st.LastError)
		}
	}

	pipelines, err := d.store.ListAllPipelines(ctx)
	if err != nil {
		return err
	}
	names := map[int64]string{}
	for _, p := range pipelines {
		names[p.ID] = p.Name
		jobs, _, err := d.store.ListBackfillJobs(ctx, p.ID, configstore.Page{Limit: 500})
		if err != nil {
			return err
		}
		for _, j := range jobs {
			d.job(p, j)
		}
	}

	states, _, err := d.store.ListDestinationStates(ctx, configstore.Page{Limit: 500})
	if err != nil {
		return err
	}
	dests := map[int64]string{}
	for _, st := range states {
		key := [2]int64{st.PipelineID, st.DestinationID}
		name, ok := dests[st.DestinationID]
		if !ok {
			if dst, err := d.store.GetDestination(ctx, st.DestinationID); err == nil {
				name = dst.Name
			}
			dests[st.DestinationID] = name
		}
		pair := fmt.Sprintf("pipeline %d (%s) -> destination %d (%s)", st.PipelineID, names[st.PipelineID], st.DestinationID, name)
		if !d.flowing[key] && (st.Progress.AppliedCommitLSN != "" || !st.LastAppliedAt.IsZero()) {
			d.flowing[key] = true
			d.printf("changes flowing: %s", pair)
		}
		h := string(st.Health)
		if d.health[key] == h+st.LastError {
			continue
		}
		prev := d.health[key]
		d.health[key] = h + st.LastError
		switch {
		case st.Health == configstore.HealthError:
			d.printf("%s: ERROR: %s", pair, st.LastError)
		case st.Health == configstore.HealthHealthy && strings.HasPrefix(prev, string(configstore.HealthError)):
			d.printf("%s: recovered, HEALTHY", pair)
		}
	}
	d.first = false
	return nil
}

// job prints a snapshot or backfill job's progress when it changed, and
// its end once.
func (d *devProgress) job(p configstore.Pipeline, j configstore.BackfillJob) {
	if d.done[j.ID] {
		return
	}
	what := fmt.Sprintf("%s of %s (pipeline %d)", j.Kind, j.Table, p.ID)
	switch j.Status {
	case configstore.JobCompleted, configstore.JobFailed, configstore.JobCancelled:
		d.done[j.ID] = true
		jp := d.jobs[j.ID]
		delete(d.jobs, j.ID)
		if d.first && jp == nil {
			return // finished before this process started
		}
		switch j.Status {
		case configstore.JobCompleted:
			took := ""
			if j.StartedAt != nil && j.FinishedAt != nil {
				took = " in " + j.FinishedAt.Sub(*j.StartedAt).Round(100*time.Millisecond).String()
			}
			d.printf("%s: done, %s rows%s", what, humanize.Thousands(j.RowsCopied), took)
		case configstore.JobFailed:
			d.printf("%s: FAILED after %s rows: %s", what, humanize.Thousands(j.RowsCopied), j.Error)
		default:
			d.printf("%s: cancelled after %s rows", what, humanize.Thousands(j.RowsCopied))
		}
	case configstore.JobExecuting:
		now := d.now()
		jp := d.jobs[j.ID]
		if jp == nil {
			jp = &jobProgress{firstAt: now, firstRows: j.RowsCopied, lastRows: -1}
			d.jobs[j.ID] = jp
		}
		if jp.lastRows == j.RowsCopied {
			return
		}
		jp.lastRows = j.RowsCopied
		rate := 0.0
		if s := now.Sub(jp.firstAt).Seconds(); s > 0 {
			rate = float64(j.RowsCopied-jp.firstRows) / s
		}
		if j.RowsCopied == 0 {
			if j.RowsTotal != nil {
				d.printf("%s: started, about %s rows", what, humanize.Thousands(*j.RowsTotal))
			} else {
				d.printf("%s: started", what)
			}
			return
		}
		d.printf("%s", jobLine(what, j.RowsCopied, j.RowsTotal, rate))
	case configstore.JobPending:
		if _, ok := d.jobs[j.ID]; !ok {
			d.jobs[j.ID] = &jobProgress{firstAt: d.now(), firstRows: j.RowsCopied, lastRows: -1}
			if j.Error != "" {
				d.printf("%s: waiting: %s", what, j.Error)
			} else {
				d.printf("%s: waiting for a worker", what)
			}
		}
	}
}

// jobLine is "snapshot of public.orders (pipeline 1): 5,000/10,000 rows
// (50%), 2,500 rows/s, ETA 2s"; the parts that are not known are left out.
func jobLine(what string, copied int64, total *int64, rate float64) string {
	var b strings.Builder
	b.WriteString(what + ": " + humanize.Thousands(copied))
	if total != nil && *total > 0 {
		b.WriteString("/" + humanize.Thousands(*total) + " rows")
		fmt.Fprintf(&b, " (%d%%)", int(math.Min(100, 100*float64(copied)/float64(*total))))
	} else {
		b.WriteString(" rows")
	}
	if rate > 0 {
		b.WriteString(", " + humanize.Thousands(int64(rate)) + " rows/s")
		if total != nil && *total > copied {
			eta := time.Duration(float64(*total-copied) / rate * float64(time.Second))
			b.WriteString(", ETA " + eta.Round(time.Second).String())
		}
	}
	return b.String()
}
