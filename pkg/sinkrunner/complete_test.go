package sinkrunner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestCompletionJobs drives the completer against a real config store:
// reported keys become completion jobs of at most 1,000 keys, keys an
// active job reads get no second job, a completed job's keys leave the
// health note, and a failed job stays in it until its keys are reported
// again, which makes a new job.
func TestCompletionJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testkit.StartPostgres(t)
	box, err := secrets.NewBox("sinkrunner-test-secret-key-012345")
	if err != nil {
		t.Fatal(err)
	}
	cfgDB := pg.CreateDatabase(t, "cfg")
	s, err := configstore.Open(ctx, pg.DSN(cfgDB), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	src, err := s.CreateSource(ctx, configstore.SourceInput{Name: "src", Host: "h", Port: 5432, Database: "d", User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.CreateDestination(ctx, configstore.DestinationInput{Name: "d", Type: "duckdb", Config: map[string]any{"path": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.CreatePipeline(ctx, configstore.PipelineInput{Name: "p", SourceID: src.ID, DestinationIDs: []int64{d.ID},
		Tables: []string{"public.docs", "public.pairs"}})
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{cfg: Config{PipelineID: p.ID, DestinationID: d.ID, Completions: storeCompletions{s}}, comp: newCompleter(),
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	keys := func(from, to int) [][]string {
		var out [][]string
		for i := from; i <= to; i++ {
			out = append(out, []string{fmt.Sprint(i)})
		}
		return out
	}
	jobs := func() []configstore.BackfillJob {
		t.Helper()
		js, _, err := s.ListBackfillJobs(ctx, p.ID, configstore.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	r.comp.add([]IncompleteRows{{Table: "public.docs", KeyColumns: []string{"id"}, Keys: keys(1, 2500)},
		{Table: "public.pairs", KeyColumns: []string{"tenant", "n"}, Keys: [][]string{{"a", "1"}, {"b", "1"}, {"a", "2"}}}})
	r.completeTick(ctx)
	got := jobs()
	if len(got) != 4 {
		t.Fatalf("jobs after 2,500 + 3 keys: %d", len(got))
	}
	sizes := map[string][]int{}
	for _, j := range got {
		if j.Kind != JobKindCompletion || len(j.DestinationIDs) != 1 || j.DestinationIDs[0] != d.ID || j.Status != configstore.JobPending {
			t.Fatalf("job: %+v", j)
		}
		for _, f := range j.Filters {
			var vals []string
			if err := json.Unmarshal(f.Value, &vals); err != nil || f.Op != "in" {
				t.Fatalf("filter %+v: %v", f, err)
			}
			sizes[j.Table+"."+f.Column] = append(sizes[j.Table+"."+f.Column], len(vals))
		}
	}
	if fmt.Sprint(sizes) != "map[public.docs.id:[1000 1000 500] public.pairs.n:[2] public.pairs.tenant:[2]]" &&
		fmt.Sprint(sizes) != "map[public.docs.id:[500 1000 1000] public.pairs.n:[2] public.pairs.tenant:[2]]" {
		t.Fatalf("filter sizes: %v", sizes)
	}

	// Reported again while their jobs are pending: no new job.
	r.comp.add([]IncompleteRows{{Table: "public.docs", KeyColumns: []string{"id"}, Keys: keys(1, 10)}})
	r.completeTick(ctx)
	if n := len(jobs()); n != 4 {
		t.Fatalf("jobs after keys reported again: %d", n)
	}
	note := r.comp.note()
	if !strings.Contains(note, "public.docs: 2500 rows with columns not yet known (keys 1, 10, 100, …); completion backfill #") ||
		!strings.Contains(note, "public.pairs: 3 rows with columns not yet known (keys (a, 1), (a, 2), (b, 1)); completion backfill #") {
		t.Fatalf("note: %s", note)
	}

	// The pairs job completes, one docs job fails.
	byTable := map[string][]int64{}
	for _, j := range jobs() {
		byTable[j.Table] = append(byTable[j.Table], j.ID)
	}
	conn := pg.Connect(t, cfgDB)
	finish := func(id int64, st configstore.JobStatus, msg string) {
		t.Helper()
		if _, err := conn.Exec(ctx, "UPDATE backfill_jobs SET status = $2, error = $3 WHERE id = $1", id, string(st), msg); err != nil {
			t.Fatal(err)
		}
	}
	finish(byTable["public.pairs"][0], configstore.JobCompleted, "")
	failed := byTable["public.docs"][0]
	finish(failed, configstore.JobFailed, "connect to source: refused")
	r.completeTick(ctx)
	note = r.comp.note()
	if strings.Contains(note, "public.pairs") || !strings.Contains(note, fmt.Sprintf("completion backfill #%d failed: connect to source: refused", failed)) {
		t.Fatalf("note after one completed, one failed job: %s", note)
	}
	// Its keys reported again: a new job for them alone.
	var vals []string
	_ = json.Unmarshal(mustJob(t, s, failed).Filters[0].Value, &vals)
	var again [][]string
	for _, v := range vals {
		again = append(again, []string{v})
	}
	r.comp.add([]IncompleteRows{{Table: "public.docs", KeyColumns: []string{"id"}, Keys: again}})
	r.completeTick(ctx)
	all := jobs()
	if len(all) != 5 {
		t.Fatalf("jobs after the failed job's keys came again: %d", len(all))
	}
	if note := r.comp.note(); strings.Contains(note, "failed") {
		t.Fatalf("note still names the failed job: %s", note)
	}
	// Every docs job completes: the note is empty.
	for _, j := range all {
		if j.Table == "public.docs" && j.ID != failed {
			finish(j.ID, configstore.JobCompleted, "")
		}
	}
	r.completeTick(ctx)
	if note := r.comp.note(); note != "" {
		t.Fatalf("note after every job completed: %s", note)
	}
}

func mustJob(t *testing.T, s *configstore.Store, id int64) configstore.BackfillJob {
	t.Helper()
	j, err := s.GetBackfillJob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// storeCompletions records completion jobs in a real config store, as the
// sink service's adapter does (services/sink imports this package, so the
// test cannot use that one).
type storeCompletions struct{ s *configstore.Store }

func (c storeCompletions) CreateCompletion(ctx context.Context, req CompletionRequest) (CompletionJob, error) {
	in := configstore.BackfillInput{PipelineID: req.PipelineID, Table: req.Table, Kind: JobKindCompletion,
		DestinationIDs: []int64{req.DestinationID}}
	for _, f := range req.Filters {
		raw, err := json.Marshal(f.Values)
		if err != nil {
			return CompletionJob{}, err
		}
		in.Filters = append(in.Filters, configstore.BackfillFilter{Column: f.Column, Op: "in", Value: raw})
	}
	j, err := c.s.CreateBackfillJob(ctx, in)
	return CompletionJob{ID: j.ID, Table: j.Table, Status: JobStatus(j.Status), Error: j.Error}, err
}

func (c storeCompletions) CompletionJob(ctx context.Context, id int64) (CompletionJob, error) {
	j, err := c.s.GetBackfillJob(ctx, id)
	return CompletionJob{ID: j.ID, Table: j.Table, Status: JobStatus(j.Status), Error: j.Error}, err
}
