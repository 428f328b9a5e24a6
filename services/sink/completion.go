package sink

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// BackfillStore is the part of the config store completion jobs need;
// *configstore.Store implements it.
type BackfillStore interface {
	CreateBackfillJob(ctx context.Context, in configstore.BackfillInput) (configstore.BackfillJob, error)
	GetBackfillJob(ctx context.Context, id int64) (configstore.BackfillJob, error)
}

// completions stores a runner's completion requests as backfill jobs of
// kind sinkrunner.JobKindCompletion, which the backfill worker runs.
type completions struct{ store BackfillStore }

var _ sinkrunner.CompletionStore = completions{}

func (c completions) CreateCompletion(ctx context.Context, req sinkrunner.CompletionRequest) (sinkrunner.CompletionJob, error) {
	in := configstore.BackfillInput{PipelineID: req.PipelineID, Table: req.Table, Kind: sinkrunner.JobKindCompletion,
		DestinationIDs: []int64{req.DestinationID}}
	for _, f := range req.Filters {
		raw, err := json.Marshal(f.Values)
		if err != nil {
			return sinkrunner.CompletionJob{}, fmt.Errorf("encode the values of %s: %w", f.Column, err)
		}
		in.Filters = append(in.Filters, configstore.BackfillFilter{Column: f.Column, Op: "in", Value: raw})
	}
	j, err := c.store.CreateBackfillJob(ctx, in)
	if err != nil {
		return sinkrunner.CompletionJob{}, err
	}
	return completionJob(j), nil
}

func (c completions) CompletionJob(ctx context.Context, id int64) (sinkrunner.CompletionJob, error) {
	j, err := c.store.GetBackfillJob(ctx, id)
	if err != nil {
		return sinkrunner.CompletionJob{}, err
	}
	return completionJob(j), nil
}

func completionJob(j configstore.BackfillJob) sinkrunner.CompletionJob {
	return sinkrunner.CompletionJob{ID: j.ID, Table: j.Table, Status: sinkrunner.JobStatus(j.Status), Error: j.Error}
}
