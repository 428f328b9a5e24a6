package settings

import (
	"strings"
	"testing"
	"time"
)

func TestLoadObservability(t *testing.T) {
	o, err := LoadObservability()
	if err != nil || o != DefaultObservability() {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	t.Setenv(EnvMetricsAddr, "127.0.0.1:9464")
	t.Setenv(EnvWALMonitorInterval, "15s")
	t.Setenv(EnvWALRetention, "24h")
	t.Setenv(EnvLagThreshold, "2m")
	t.Setenv(EnvPprof, "1")
	o, err = LoadObservability()
	if err != nil {
		t.Fatal(err)
	}
	want := Observability{MetricsAddr: "127.0.0.1:9464", WALMonitorInterval: 15 * time.Second, WALRetention: 24 * time.Hour, LagThreshold: 2 * time.Minute, Pprof: true}
	if o != want {
		t.Fatalf("got %+v, want %+v", o, want)
	}
	t.Setenv(EnvWALMonitorInterval, "0s")
	t.Setenv(EnvWALRetention, "a week")
	t.Setenv(EnvLagThreshold, "-1s")
	t.Setenv(EnvPprof, "yes please")
	_, err = LoadObservability()
	if err == nil || !strings.Contains(err.Error(), EnvWALMonitorInterval) || !strings.Contains(err.Error(), EnvWALRetention) ||
		!strings.Contains(err.Error(), EnvLagThreshold) || !strings.Contains(err.Error(), EnvPprof) {
		t.Fatalf("want every variable named, got %v", err)
	}
}
