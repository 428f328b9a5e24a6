package sinkrunner

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// IncompleteReporter is the optional capability of a Driver whose guard
// can leave a row with columns no change has provided yet: an update left
// TOASTed columns unchanged and the row was missing at the destination
// (docs/delivery.md, "Incompletable partial changes").
//
// Contract: Incomplete returns the rows the last Apply that returned nil
// left with unknown columns (every such row of its batches with partial
// changes, not a sample), and nothing after an Apply that failed. It is
// called from the goroutine that calls Apply, right after it.
type IncompleteReporter interface {
	Incomplete() []IncompleteRows
}

// IncompleteRows are the rows of one table left with unknown columns.
type IncompleteRows struct {
	// Table is the source table, "schema.table".
	Table string
	// KeyColumns names the key columns; each of Keys holds their values in
	// PostgreSQL's text form, in that order.
	KeyColumns []string
	Keys       [][]string
}

// CompletionStore records completion backfills; the sink service stores
// them as backfill jobs of kind JobKindCompletion in the config store.
// Sinks never connect to sources: the backfill worker, which holds the
// source's credentials, reads the rows and publishes them as versioned
// snapshot changes, whose guard fills only unknown columns.
type CompletionStore interface {
	// CreateCompletion records a pending job reading the rows of req.
	CreateCompletion(ctx context.Context, req CompletionRequest) (CompletionJob, error)
	// CompletionJob returns the job of id.
	CompletionJob(ctx context.Context, id int64) (CompletionJob, error)
}

// CompletionRequest asks for the rows of one source table to be read
// again and published for one destination alone.
type CompletionRequest struct {
	PipelineID    int64
	DestinationID int64
	// Table is the source table, "schema.table".
	Table string
	// Filters select the rows: each key column holds one of its Values.
	Filters []KeyFilter
}

// KeyFilter is one key column and the values (PostgreSQL's text form) the
// rows to read hold in it.
type KeyFilter struct {
	Column string
	Values []string
}

// CompletionJob is where a completion backfill is.
type CompletionJob struct {
	ID     int64
	Table  string
	Status JobStatus
	// Error is why the job failed or was cancelled.
	Error string
}

// JobStatus is where a completion job is; the values are the config
// store's (JobStatus), so the sink's store passes them on.
type JobStatus string

// JobStatus values.
const (
	JobPending   JobStatus = "PENDING"
	JobExecuting JobStatus = "EXECUTING"
	JobCompleted JobStatus = "COMPLETED"
	JobFailed    JobStatus = "FAILED"
	JobCancelled JobStatus = "CANCELLED"
)

// JobKindCompletion is the kind of the backfill jobs a runner creates to
// complete rows left with unknown columns.
const JobKindCompletion = "completion"

// maxCompletionKeys is the most keys one completion job reads: the most
// values pkg/snapshot accepts in one "in" filter.
const maxCompletionKeys = 1000

// completer gathers the keys the driver reports and turns them, every
// CompleteEvery, into completion backfill jobs: debounced, so a burst of
// partial updates makes one job, and never a second job for a key a
// pending or executing one already reads.
type completer struct {
	mu     sync.Mutex
	tables map[string]*incomplete
	// lastErr is the last failure to create or read a job, for health.
	lastErr string
}

// incomplete is one table's rows not yet known to be completed.
type incomplete struct {
	cols []string
	// keys maps a key (its values joined) to its values and to the job
	// reading it (0: none yet, or its job failed).
	keys map[string]*pendingKey
	jobs map[int64]*completionJob
}

type pendingKey struct {
	vals []string
	job  int64
}

type completionJob struct {
	keys   []string
	status JobStatus
	err    string
}

func newCompleter() *completer { return &completer{tables: map[string]*incomplete{}} }

// add records rows reported by a committed Apply.
func (c *completer) add(rows []IncompleteRows) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range rows {
		if len(t.Keys) == 0 {
			continue
		}
		inc := c.tables[t.Table]
		if inc == nil {
			inc = &incomplete{cols: t.KeyColumns, keys: map[string]*pendingKey{}, jobs: map[int64]*completionJob{}}
			c.tables[t.Table] = inc
		}
		for _, k := range t.Keys {
			id := keyText(k)
			pk, ok := inc.keys[id]
			if !ok {
				inc.keys[id] = &pendingKey{vals: k}
				continue
			}
			// Reported again after its job failed (the source was
			// unreachable, or the job was cancelled): try again.
			if j := inc.jobs[pk.job]; j != nil && (j.status == JobFailed || j.status == JobCancelled) {
				pk.job = 0
			}
		}
	}
}

// keyText is how a key appears in health reasons: "1", or "(1, a)".
func keyText(vals []string) string {
	if len(vals) == 1 {
		return vals[0]
	}
	return "(" + strings.Join(vals, ", ") + ")"
}

// completeTick creates jobs for the keys no active job reads, forgets the
// keys of jobs that completed, and reports health when its note changed.
func (r *Runner) completeTick(ctx context.Context) {
	c := r.comp
	before := c.note()
	st := r.cfg.Completions
	c.mu.Lock()
	type work struct {
		table string
		cols  []string
		keys  []string
		vals  [][]string
	}
	var todo []work
	var check []int64
	for table, inc := range c.tables {
		var w work
		for id, k := range inc.keys {
			if k.job == 0 {
				w.keys = append(w.keys, id)
			}
		}
		slices.Sort(w.keys)
		for len(w.keys) > 0 {
			n := min(len(w.keys), maxCompletionKeys)
			part := work{table: table, cols: inc.cols, keys: w.keys[:n]}
			for _, id := range part.keys {
				part.vals = append(part.vals, inc.keys[id].vals)
			}
			todo = append(todo, part)
			w.keys = w.keys[n:]
		}
		for id, j := range inc.jobs {
			if j.status == JobPending || j.status == JobExecuting {
				check = append(check, id)
			}
		}
	}
	c.mu.Unlock()

	var errText string
	for _, w := range todo {
		req := CompletionRequest{PipelineID: r.cfg.PipelineID, DestinationID: r.cfg.DestinationID, Table: w.table,
			Filters: keyFilters(w.cols, w.vals)}
		j, err := st.CreateCompletion(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			errText = fmt.Sprintf("create completion backfill of %s: %v", w.table, err)
			r.log.Warn("create completion backfill", "table", w.table, "keys", len(w.keys), "error", err)
			continue
		}
		r.log.Info("rows left with columns no change has provided yet: completing them from the source",
			"table", w.table, "keys", len(w.keys), "job", j.ID)
		c.mu.Lock()
		inc := c.tables[w.table]
		inc.jobs[j.ID] = &completionJob{keys: w.keys, status: j.Status}
		for _, id := range w.keys {
			if k := inc.keys[id]; k != nil {
				k.job = j.ID
			}
		}
		dropUnreferenced(inc)
		c.mu.Unlock()
	}
	for _, id := range check {
		j, err := st.CompletionJob(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			errText = fmt.Sprintf("read completion backfill #%d: %v", id, err)
			continue
		}
		c.mu.Lock()
		inc := c.tables[j.Table]
		if cj := inc.jobs[id]; cj != nil && j.Status != cj.status {
			cj.status, cj.err = j.Status, j.Error
			switch j.Status {
			case JobCompleted:
				// Every row it read is in the stream, behind the
				// changes that left it incomplete; a key deleted at
				// the source meanwhile has no row to read and stays
				// as the stream leaves it (its delete arrives).
				for _, k := range cj.keys {
					if pk := inc.keys[k]; pk != nil && pk.job == id {
						delete(inc.keys, k)
					}
				}
				delete(inc.jobs, id)
			case JobFailed, JobCancelled:
				// Its keys stay reported; a later partial change of
				// one of them makes a new job.
			}
		}
		if len(inc.keys) == 0 && len(inc.jobs) == 0 {
			delete(c.tables, j.Table)
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.lastErr = errText
	c.mu.Unlock()
	if c.note() != before {
		r.health.notesChanged(ctx)
	}
}

// dropUnreferenced forgets failed jobs none of whose keys they still read.
func dropUnreferenced(inc *incomplete) {
	used := map[int64]bool{}
	for _, k := range inc.keys {
		used[k.job] = true
	}
	for id := range inc.jobs {
		if !used[id] {
			delete(inc.jobs, id)
		}
	}
}

// keyFilters selects the rows of keys: an "in" per key column. For a
// composite key that is a superset of the keys, which is harmless: the
// extra rows are versioned snapshot changes like any backfill's, and the
// guard never lets them overwrite newer values.
func keyFilters(cols []string, keys [][]string) []KeyFilter {
	out := make([]KeyFilter, 0, len(cols))
	for i, col := range cols {
		var vals []string
		for _, k := range keys {
			vals = append(vals, k[i])
		}
		slices.Sort(vals)
		vals = slices.Compact(vals)
		out = append(out, KeyFilter{Column: col, Values: vals})
	}
	return out
}

// note is the health reason: per table, the count of rows not yet
// completed, a few keys, and where their completion is.
func (c *completer) note() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.tables))
	for t := range c.tables {
		names = append(names, t)
	}
	slices.Sort(names)
	var parts []string
	for _, t := range names {
		inc := c.tables[t]
		keys := make([]string, 0, len(inc.keys))
		for id := range inc.keys {
			keys = append(keys, id)
		}
		slices.Sort(keys)
		sample := keys[:min(len(keys), 3)]
		s := fmt.Sprintf("%s: %d rows with columns not yet known (keys %s", t, len(keys), strings.Join(sample, ", "))
		if len(keys) > len(sample) {
			s += ", …"
		}
		s += ")"
		ids := make([]int64, 0, len(inc.jobs))
		for id := range inc.jobs {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			j := inc.jobs[id]
			switch j.status {
			case JobFailed, JobCancelled:
				s += fmt.Sprintf("; completion backfill #%d %s: %s", id, strings.ToLower(string(j.status)), j.err)
			default:
				s += fmt.Sprintf("; completion backfill #%d running", id)
			}
		}
		if len(ids) == 0 {
			s += "; completion backfill starting"
		}
		parts = append(parts, s)
	}
	if c.lastErr != "" {
		parts = append(parts, c.lastErr)
	}
	return strings.Join(parts, "; ")
}

// completeLoop runs completeTick every CompleteEvery until ctx ends.
func (r *Runner) completeLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.CompleteEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.completeTick(ctx)
		}
	}
}
