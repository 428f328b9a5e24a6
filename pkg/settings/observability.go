package settings

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Environment variables of metrics and WAL monitoring.
const (
	EnvMetricsAddr        = "ROSETTA_METRICS_ADDR"
	EnvWALMonitorInterval = "ROSETTA_WAL_MONITOR_INTERVAL"
	EnvWALRetention       = "ROSETTA_WAL_METRICS_RETENTION"
	EnvLagThreshold       = "ROSETTA_LAG_THRESHOLD"
	EnvPprof              = "ROSETTA_PPROF"
	EnvMetricsToken       = "ROSETTA_METRICS_TOKEN"
	EnvMetricsTokenFile   = "ROSETTA_METRICS_TOKEN_FILE"
)

// Observability configures /metrics and WAL monitoring. It is loaded apart
// from Settings (LoadObservability) so that services that do not use it are
// not affected by it.
type Observability struct {
	// MetricsAddr is where a process serves Prometheus metrics on
	// /metrics; empty serves none there. The API serves /metrics on its own
	// address in any case, so this is for `rosetta capture` and
	// `rosetta sink` run without it.
	MetricsAddr string
	// WALMonitorInterval is how often capture checks every source's WAL
	// retention (default 60s).
	WALMonitorInterval time.Duration
	// WALRetention is how long WAL samples are kept in the config DB
	// (default 7 days).
	WALRetention time.Duration
	// LagThreshold is how far behind its source (lag_seconds) a pipeline
	// destination may be before the API shows it LAGGING (default 60s).
	LagThreshold time.Duration
	// Pprof serves Go's profiler (/debug/pprof/) on MetricsAddr too, for
	// profiling under load (make bench -pprof). Off by default: profiles
	// reveal internals and cost CPU while taken.
	Pprof bool
	// MetricsToken (ROSETTA_METRICS_TOKEN or the content of
	// ROSETTA_METRICS_TOKEN_FILE), when set, must be sent as
	// "Authorization: Bearer <token>" to MetricsAddr's /metrics and
	// profiler. The profiler on an address other than loopback requires
	// it: heap profiles hold the secrets in the process's memory.
	MetricsToken string
}

// DefaultObservability holds the defaults of Observability.
func DefaultObservability() Observability {
	return Observability{WALMonitorInterval: time.Minute, WALRetention: 7 * 24 * time.Hour, LagThreshold: time.Minute}
}

// LoadObservability reads the environment over DefaultObservability and
// validates it.
func LoadObservability() (Observability, error) {
	o := DefaultObservability()
	o.MetricsAddr = os.Getenv(EnvMetricsAddr)
	var errs []error
	dur := func(name string, dst *time.Duration) {
		v := os.Getenv(name)
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive duration like 60s or 168h", name, v))
			return
		}
		*dst = d
	}
	switch v := os.Getenv(EnvPprof); v {
	case "", "0", "false":
	case "1", "true":
		o.Pprof = true
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want 1 or 0", EnvPprof, v))
	}
	o.MetricsToken = os.Getenv(EnvMetricsToken)
	if f := os.Getenv(EnvMetricsTokenFile); f != "" {
		if o.MetricsToken != "" {
			errs = append(errs, fmt.Errorf("both %s and %s are set: set one", EnvMetricsToken, EnvMetricsTokenFile))
		} else if b, err := os.ReadFile(f); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvMetricsTokenFile, err))
		} else if o.MetricsToken = strings.TrimSpace(string(b)); o.MetricsToken == "" {
			errs = append(errs, fmt.Errorf("%s=%s: the file is empty", EnvMetricsTokenFile, f))
		}
	}
	if o.Pprof && o.MetricsAddr != "" && !loopback(o.MetricsAddr) && o.MetricsToken == "" {
		errs = append(errs, fmt.Errorf("%s with %s=%s (not loopback) needs %s: heap profiles hold secrets",
			EnvPprof, EnvMetricsAddr, o.MetricsAddr, EnvMetricsToken))
	}
	dur(EnvWALMonitorInterval, &o.WALMonitorInterval)
	dur(EnvWALRetention, &o.WALRetention)
	dur(EnvLagThreshold, &o.LagThreshold)
	return o, errors.Join(errs...)
}
