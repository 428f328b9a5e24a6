package api

import (
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/rosettacdc/rosetta/pkg/metrics"
)

// UseMetrics serves the process's Prometheus metrics on GET /metrics (at
// the root, beside /api/v1, where Prometheus looks by default). Call it
// before Listen; without it /metrics is 404.
func (s *Server) UseMetrics(m *metrics.Metrics) {
	if m == nil {
		return
	}
	// The matrix has GET /metrics, so handle cannot fail here.
	if err := s.handle("GET", "/metrics", adaptor.HTTPHandler(m.Handler())); err != nil {
		s.log.Error("serve metrics", "error", err)
	}
}
