package sink

import (
	"testing"

	"github.com/rosettacdc/rosetta/pkg/settings"
)

// TestDefaultConfigFromSettings checks that the sink's defaults are the
// settings' (one place for each default), runner included.
func TestDefaultConfigFromSettings(t *testing.T) {
	d, s := DefaultConfig(), settings.Default()
	tests := []struct {
		name      string
		got, want any
	}{
		{"ReconcileInterval", d.ReconcileInterval, s.ReconcileInterval},
		{"Runner.BatchSize", d.Runner.BatchSize, s.SinkBatchSize},
		{"Runner.BatchWait", d.Runner.BatchWait, s.SinkBatchWait},
		{"Runner.ApplyTimeout", d.Runner.ApplyTimeout, s.SinkApplyTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("sink default %v, settings default %v", tt.got, tt.want)
			}
		})
	}
}
