package api

import (
	"context"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/pkg/walmonitor"
)

// WALSamples reads WAL monitoring samples; *walmonitor.Store implements it.
type WALSamples interface {
	List(ctx context.Context, q walmonitor.Query) ([]walmonitor.Sample, error)
}

const (
	defaultWALLimit = 1000
	maxWALLimit     = 10000
)

// walMetricsBody is GET /metrics/wal.
type walMetricsBody struct {
	Samples []walmonitor.Sample `json:"samples"`
}

// UseWALMetrics serves the samples of w on GET /api/v1/metrics/wal; without
// it that endpoint answers 409.
func (s *Server) UseWALMetrics(w WALSamples) { s.wal = w }

// getWALMetrics lists WAL samples, oldest first, filtered by ?source_id=,
// ?from= (inclusive) and ?to= (exclusive) RFC3339 times, at most ?limit=.
func (s *Server) getWALMetrics(c *fiber.Ctx) error {
	q := walmonitor.Query{Limit: defaultWALLimit}
	if raw := c.Query("source_id"); raw != "" {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id <= 0 {
			return invalid("source_id", "source_id must be a positive integer")
		}
		q.SourceID = id
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if raw := c.Query(f.name); raw != "" {
			t, err := time.Parse(time.RFC3339Nano, raw)
			if err != nil {
				return invalid(f.name, "%s must be an RFC3339 time like 2026-11-23T10:00:00Z", f.name)
			}
			*f.dst = t
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return invalid("to", "to must be after from")
	}
	if raw := c.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxWALLimit {
			return invalid("limit", "limit must be an integer from 1 to %d", maxWALLimit)
		}
		q.Limit = n
	}
	if s.wal == nil {
		return &apiError{status: fiber.StatusConflict, msg: "WAL monitoring is not available in this process"}
	}
	samples, err := s.wal.List(c.UserContext(), q)
	if err != nil {
		return err
	}
	if samples == nil {
		samples = []walmonitor.Sample{}
	}
	return c.JSON(walMetricsBody{Samples: samples})
}
