package capture

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/natsx"
)

func TestExplainStreamFull(t *testing.T) {
	full := &jetstream.APIError{Code: 503, ErrorCode: jsStoreFailed, Description: "maximum bytes exceeded"}
	err := explainStreamFull(fmt.Errorf("publish rosetta.cdc.7.public.t.0 7:0/1:1: %w", full), 7, natsx.StreamLimits{MaxBytes: 4096})
	for _, want := range []string{"ROSETTA_CDC_7 is full", "4096 bytes", "ROSETTA_STREAM_MAX_BYTES", "stops confirming WAL", "maximum bytes exceeded"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("explained error %q does not say %q", err, want)
		}
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		t.Errorf("explained error no longer wraps the API error")
	}
	// Anything else passes unchanged.
	other := &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "some disk error"}
	for _, e := range []error{errors.New("publish: nats: timeout"), other} {
		if got := explainStreamFull(e, 7, natsx.StreamLimits{}); got != e {
			t.Errorf("explainStreamFull(%v) = %v, want it unchanged", e, got)
		}
	}
}

func TestReceiveTimeoutExceedsStandbyInterval(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.ReceiveTimeout = cfg.StandbyInterval
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "ReceiveTimeout") {
		t.Fatalf("Validate with ReceiveTimeout = StandbyInterval: %v, want an error", err)
	}
	cfg.ReceiveTimeout = cfg.StandbyInterval + time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
