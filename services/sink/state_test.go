package sink

import (
	"context"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// TestStateReporter checks that a runner's report reaches the config store
// with the store's health values: the API and the console read those.
func TestStateReporter(t *testing.T) {
	at := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	tests := []struct {
		health sinkrunner.Health
		want   configstore.Health
	}{
		{sinkrunner.HealthHealthy, configstore.HealthHealthy},
		{sinkrunner.HealthError, configstore.HealthError},
	}
	for _, tt := range tests {
		t.Run(string(tt.health), func(t *testing.T) {
			store := newMemStore()
			st := sinkrunner.State{PipelineID: 3, DestinationID: 4, Health: tt.health, LastError: "why",
				LastAppliedAt: at, UpdatedAt: at.Add(time.Second)}
			if err := (stateReporter{store: store}).ReportState(context.Background(), st); err != nil {
				t.Fatal(err)
			}
			want := configstore.DestinationState{PipelineID: 3, DestinationID: 4, Health: tt.want, LastError: "why",
				LastAppliedAt: at, UpdatedAt: at.Add(time.Second)}
			if got := store.state(3, 4); got != want {
				t.Fatalf("stored %+v, want %+v", got, want)
			}
		})
	}
}
