package sinkrunner_test

import (
	"testing"

	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// TestDefaultsFromSettings checks that a runner built without settings
// (tests, tools, the bench) applies as `rosetta sink` does: the defaults an
// operator can set are written down once, in pkg/settings.
func TestDefaultsFromSettings(t *testing.T) {
	d, s := sinkrunner.DefaultConfig(), settings.Default()
	tests := []struct {
		name      string
		got, want any
	}{
		{"BatchSize", d.BatchSize, s.SinkBatchSize},
		{"BatchWait", d.BatchWait, s.SinkBatchWait},
		{"ApplyTimeout", d.ApplyTimeout, s.SinkApplyTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("sinkrunner default %v, settings default %v", tt.got, tt.want)
			}
		})
	}
}
