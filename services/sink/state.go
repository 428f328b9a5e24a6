package sink

import (
	"context"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// stateReporter stores a runner's reports in the config store. The
// runner's health values are the store's, so they pass as they are.
type stateReporter struct{ store ConfigStore }

var _ sinkrunner.StateReporter = stateReporter{}

func (s stateReporter) ReportState(ctx context.Context, st sinkrunner.State) error {
	return s.store.SetDestinationState(ctx, configstore.DestinationState{
		PipelineID:    st.PipelineID,
		DestinationID: st.DestinationID,
		Health:        configstore.Health(st.Health),
		LastError:     st.LastError,
		LastAppliedAt: st.LastAppliedAt,
		UpdatedAt:     st.UpdatedAt,
	})
}
