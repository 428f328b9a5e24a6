package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/pgrepl"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// CreateBackfillJob lets memStore stand for the config store; the tests
// that use it create no jobs.
func (s *memStore) CreateBackfillJob(_ context.Context, in configstore.BackfillInput) (configstore.BackfillJob, error) {
	return configstore.BackfillJob{PipelineID: in.PipelineID, Table: in.Table, Kind: in.Kind, Status: configstore.JobPending}, nil
}

// jobStore records the backfill jobs capture creates, or fails them.
type jobStore struct {
	memStore
	jobMu sync.Mutex
	jobs  []configstore.BackfillInput
	fail  bool
}

func (s *jobStore) CreateBackfillJob(_ context.Context, in configstore.BackfillInput) (configstore.BackfillJob, error) {
	if s.fail {
		return configstore.BackfillJob{}, errors.New("config store down")
	}
	s.jobMu.Lock()
	defer s.jobMu.Unlock()
	s.jobs = append(s.jobs, in)
	return configstore.BackfillJob{ID: int64(len(s.jobs)), PipelineID: in.PipelineID, Table: in.Table}, nil
}

func (s *jobStore) created() []configstore.BackfillInput {
	s.jobMu.Lock()
	defer s.jobMu.Unlock()
	return slices.Clone(s.jobs)
}

// TestBackfillOnRewriteCapture runs capture against a real source: rows
// captured, then ADD COLUMN … DEFAULT gen_random_uuid() in the session.
// Capture must create one backfill job of the table for the pipeline that
// holds it, and none for a column added without a default.
func TestBackfillOnRewriteCapture(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	e := newEnv(t, pg, js, 1101, `CREATE TABLE vol (id int PRIMARY KEY, v text); CREATE TABLE other (id int PRIMARY KEY)`)
	logs := &syncBuffer{}
	e.log = slog.New(slog.NewTextHandler(logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("capture logs:\n%s", logs.String())
		}
	})
	store := &jobStore{memStore: memStore{sources: e.store.sources}}
	store.setPipeline(configstore.Pipeline{ID: 7, SourceID: e.src.ID, DestinationIDs: []int64{1}, Tables: []string{"public.vol"}, Status: configstore.StatusStart})
	store.setPipeline(configstore.Pipeline{ID: 8, SourceID: e.src.ID, DestinationIDs: []int64{2}, Tables: []string{"public.other"}, Status: configstore.StatusStart})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewManager(testConfig(), store, js, e.log).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.waitActive(true)

	e.exec("INSERT INTO vol VALUES (1, 'a'), (2, 'b')")
	e.waitMsgs(2)
	e.exec("ALTER TABLE vol ADD COLUMN n text; INSERT INTO vol VALUES (3, 'c')")
	e.waitMsgs(3)
	if jobs := store.created(); len(jobs) != 0 {
		t.Fatalf("column without a default: jobs %+v, want none", jobs)
	}
	e.exec("ALTER TABLE vol ADD COLUMN u uuid DEFAULT gen_random_uuid(); INSERT INTO vol (id, v) VALUES (4, 'd')")
	e.waitMsgs(4)
	eventually(t, 10*time.Second, "a backfill job of public.vol", func() (bool, string) {
		jobs := store.created()
		return len(jobs) == 1 && jobs[0].PipelineID == 7 && jobs[0].Table == "public.vol", fmt.Sprintf("%+v", jobs)
	})
	if !strings.Contains(logs.String(), "columns=[u]") {
		t.Errorf("no warning naming column u in the logs")
	}
}

func TestBackfillUnsent(t *testing.T) {
	tt, tx := natsx.Table{Schema: "public", Name: "t"}, natsx.Table{Schema: "public", Name: "x"}
	spec := sourceSpec{Consumers: []consumerSpec{
		{PipelineID: 1, DestinationID: 10, Tables: []natsx.Table{tt, tx}},
		{PipelineID: 1, DestinationID: 11, Tables: []natsx.Table{tt, tx}},
		{PipelineID: 2, DestinationID: 10, Tables: []natsx.Table{tx}},
		{PipelineID: 3, DestinationID: 12, Tables: []natsx.Table{tt}},
	}}
	unsent := []pgrepl.UnsentValues{{Schema: "public", Table: "t", Columns: []string{"u"}}}
	for _, c := range []struct {
		name      string
		on, fail  bool
		wantJobs  []int64 // pipelines given a job of public.t
		wantLevel string
	}{
		{"on: one job per pipeline holding the table", true, false, []int64{1, 3}, "level=WARN"},
		{"off: a warning only", false, false, nil, "level=WARN"},
		{"store fails: logged, capture goes on", true, true, nil, "level=ERROR"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := DefaultConfig()
			cfg.BackfillOnRewrite = c.on
			store := &jobStore{fail: c.fail}
			w := newWorker(cfg, store, nil, slog.New(slog.NewTextHandler(&logs, nil)), spec)
			w.backfillUnsent(context.Background(), spec, unsent)
			var got []int64
			for _, j := range store.jobs {
				if j.Table != "public.t" || j.Kind != configstore.JobKindBackfill {
					t.Errorf("job %+v, want a backfill of public.t", j)
				}
				got = append(got, j.PipelineID)
			}
			if !slices.Equal(got, c.wantJobs) {
				t.Errorf("jobs for pipelines %v, want %v", got, c.wantJobs)
			}
			if !strings.Contains(logs.String(), c.wantLevel) || !strings.Contains(logs.String(), "table=public.t") || !strings.Contains(logs.String(), "columns=[u]") {
				t.Errorf("log %q lacks %s with table and columns", logs.String(), c.wantLevel)
			}
		})
	}
}
