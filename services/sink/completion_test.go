package sink

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// jobStore keeps backfill jobs in memory, as the config store would.
type jobStore struct{ jobs []configstore.BackfillJob }

func (s *jobStore) CreateBackfillJob(_ context.Context, in configstore.BackfillInput) (configstore.BackfillJob, error) {
	j := configstore.BackfillJob{ID: int64(len(s.jobs) + 1), PipelineID: in.PipelineID, Table: in.Table, Kind: in.Kind,
		DestinationIDs: in.DestinationIDs, Filters: in.Filters, Status: configstore.JobPending}
	s.jobs = append(s.jobs, j)
	return j, nil
}

func (s *jobStore) GetBackfillJob(_ context.Context, id int64) (configstore.BackfillJob, error) {
	return s.jobs[id-1], nil
}

// TestCompletions checks that a runner's completion request becomes a
// completion backfill job of its destination alone, reading its keys with
// an "in" filter per key column, and that the job's status comes back.
func TestCompletions(t *testing.T) {
	ctx := context.Background()
	store := &jobStore{}
	c := completions{store: store}
	req := sinkrunner.CompletionRequest{PipelineID: 2, DestinationID: 5, Table: "public.pairs",
		Filters: []sinkrunner.KeyFilter{{Column: "tenant", Values: []string{"a", "b"}}, {Column: "n", Values: []string{"1"}}}}
	j, err := c.CreateCompletion(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if want := (sinkrunner.CompletionJob{ID: 1, Table: "public.pairs", Status: sinkrunner.JobPending}); j != want {
		t.Fatalf("created %+v, want %+v", j, want)
	}
	got := store.jobs[0]
	if got.Kind != sinkrunner.JobKindCompletion || got.PipelineID != 2 || !reflect.DeepEqual(got.DestinationIDs, []int64{5}) {
		t.Fatalf("job %+v", got)
	}
	tests := []struct {
		column string
		values []string
	}{{"tenant", []string{"a", "b"}}, {"n", []string{"1"}}}
	if len(got.Filters) != len(tests) {
		t.Fatalf("filters %+v", got.Filters)
	}
	for i, tt := range tests {
		f := got.Filters[i]
		var vals []string
		if err := json.Unmarshal(f.Value, &vals); err != nil || f.Column != tt.column || f.Op != "in" || !reflect.DeepEqual(vals, tt.values) {
			t.Fatalf("filter %d: %+v (%v), want %s in %v", i, f, err, tt.column, tt.values)
		}
	}

	store.jobs[0].Status, store.jobs[0].Error = configstore.JobFailed, "connect to source: refused"
	j, err = c.CompletionJob(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := (sinkrunner.CompletionJob{ID: 1, Table: "public.pairs", Status: sinkrunner.JobFailed, Error: "connect to source: refused"}); j != want {
		t.Fatalf("read %+v, want %+v", j, want)
	}
}
