package settings

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Environment variables of running Rosetta on more than one machine.
const (
	EnvSinkDestinations = "ROSETTA_SINK_DESTINATIONS"
	EnvStreamReplicas   = "ROSETTA_STREAM_REPLICAS"
	EnvHealthAddr       = "ROSETTA_HEALTH_ADDR"
)

// Scale holds the settings of a deployment spread over several processes
// and machines (deploy/README.md). Settings embeds it.
type Scale struct {
	// SinkDestinations are the destinations whose sinks `rosetta sink`
	// runs; empty runs every destination's. A Snowflake sink and a
	// PostgreSQL sink then deploy, scale and fail separately.
	SinkDestinations []int64
	// StreamReplicas is how many NATS servers hold each stream and
	// consumer Rosetta creates (1 on one server, 3 on a three-node
	// cluster). A value above the cluster's size is refused when a stream
	// is created or updated; a change is applied to existing streams.
	StreamReplicas int
	// HealthAddr is where `rosetta capture` and `rosetta sink` serve
	// /livez and /readyz for orchestrators' probes; empty serves none (the
	// API has GET /api/v1/health on its own address).
	HealthAddr string
}

// DefaultScale holds the defaults of Scale: every destination, one
// replica, no health listener.
func DefaultScale() Scale { return Scale{StreamReplicas: 1} }

// load reads Scale's variables over the defaults already in sc.
func (sc *Scale) load() error {
	var errs []error
	if v, ok := os.LookupEnv(EnvSinkDestinations); ok {
		ids, err := ParseDestinationIDs(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", EnvSinkDestinations, v, err))
		}
		sc.SinkDestinations = ids
	}
	if v := os.Getenv(EnvStreamReplicas); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want a replica count (1, or 3 on a three-node cluster)", EnvStreamReplicas, v))
		}
		sc.StreamReplicas = n
	}
	if v, ok := os.LookupEnv(EnvHealthAddr); ok {
		sc.HealthAddr = v
	}
	return errors.Join(errs...)
}

// validate checks Scale.
func (sc *Scale) validate() error {
	var errs []error
	// JetStream allows 1 to 5 replicas; whether the cluster has that many
	// servers is checked when a stream is created (natsx).
	if sc.StreamReplicas < 1 || sc.StreamReplicas > 5 {
		errs = append(errs, fmt.Errorf("%s=%d: want 1 to 5 (3 on a three-node cluster)", EnvStreamReplicas, sc.StreamReplicas))
	}
	if sc.HealthAddr != "" {
		if _, _, err := net.SplitHostPort(sc.HealthAddr); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want host:port, like 0.0.0.0:8081", EnvHealthAddr, sc.HealthAddr))
		}
	}
	return errors.Join(errs...)
}

// ParseDestinationIDs parses a comma-separated list of destination ids
// ("3,7"); blanks around ids are ignored, duplicates dropped, and an empty
// list means every destination (nil).
func ParseDestinationIDs(v string) ([]int64, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var ids []int64
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		id, err := strconv.ParseInt(part, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("%q is not a destination id: want positive ids separated by commas, like 3,7", part)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
