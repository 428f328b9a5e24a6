package api

import (
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/pkg/apitoken"
)

// accessMatrix is the least role each route needs: the one place access
// is decided (docs/security.md shows the same table). Keys are
// "METHOD path" as registered with Fiber. A route registered without an
// entry makes New fail, so no route is ever served unguarded by mistake.
//
// viewer: configuration and health, no row data, no secrets.
// operator: also start/pause/refresh, backfill, dead-letter rows, recover,
// discard. admin: also create, update and delete of sources, destinations,
// pipelines and tokens, and the audit log.
var accessMatrix = map[string]apitoken.Role{
	"GET /api/v1/health": apitoken.Public,
	"GET /api/v1/ready":  apitoken.Viewer,
	"GET /api/v1/whoami": apitoken.Viewer,
	"GET /metrics":       apitoken.Viewer,

	"POST /api/v1/tokens":       apitoken.Admin,
	"GET /api/v1/tokens":        apitoken.Admin,
	"DELETE /api/v1/tokens/:id": apitoken.Admin,
	"GET /api/v1/audit":         apitoken.Admin,

	"GET /api/v1/metrics/wal": apitoken.Viewer,
	"GET /api/v1/status":      apitoken.Viewer,

	"POST /api/v1/sources":    apitoken.Admin,
	"GET /api/v1/sources":     apitoken.Viewer,
	"GET /api/v1/sources/:id": apitoken.Viewer,
	// The source's tables and columns: its catalog, not its rows.
	"GET /api/v1/sources/:id/tables": apitoken.Viewer,
	"PUT /api/v1/sources/:id":        apitoken.Admin,
	"DELETE /api/v1/sources/:id":     apitoken.Admin,

	"GET /api/v1/destination-types": apitoken.Viewer,
	// Connects out with the credentials given: as much as a create.
	"POST /api/v1/destinations/check": apitoken.Admin,
	// Reads a destination's rows.
	"POST /api/v1/destinations/:id/query": apitoken.Operator,
	// Writes and drops a transient table in the destination, with the
	// stored credentials; changes no config.
	"POST /api/v1/destinations/:id/check-live": apitoken.Operator,
	"POST /api/v1/destinations":                apitoken.Admin,
	"GET /api/v1/destinations":                 apitoken.Viewer,
	"GET /api/v1/destinations/:id":             apitoken.Viewer,
	"PUT /api/v1/destinations/:id":             apitoken.Admin,
	"DELETE /api/v1/destinations/:id":          apitoken.Admin,

	"POST /api/v1/pipelines":              apitoken.Admin,
	"GET /api/v1/pipelines":               apitoken.Viewer,
	"GET /api/v1/pipelines/:id":           apitoken.Viewer,
	"PUT /api/v1/pipelines/:id":           apitoken.Admin,
	"DELETE /api/v1/pipelines/:id":        apitoken.Admin,
	"POST /api/v1/pipelines/:id/start":    apitoken.Operator,
	"POST /api/v1/pipelines/:id/pause":    apitoken.Operator,
	"POST /api/v1/pipelines/:id/refresh":  apitoken.Operator,
	"POST /api/v1/pipelines/:id/backfill": apitoken.Operator,
	// Answers the differing keys (row data) and may create backfills.
	"POST /api/v1/pipelines/:id/verify":  apitoken.Operator,
	"GET /api/v1/pipelines/:id/backfill": apitoken.Viewer,
	// Streams row data as it changes.
	"GET /api/v1/pipelines/:id/tail":       apitoken.Operator,
	"GET /api/v1/backfill/:job_id":         apitoken.Viewer,
	"POST /api/v1/backfill/:job_id/cancel": apitoken.Operator,

	// Dead-letter queues hold row data and their errors quote values.
	"GET /api/v1/pipelines/:id/dlq":                                                      apitoken.Operator,
	"GET /api/v1/pipelines/:id/destinations/:destination_id/dlq":                         apitoken.Operator,
	"POST /api/v1/pipelines/:id/destinations/:destination_id/recover-dlq":                apitoken.Operator,
	"GET /api/v1/pipelines/:id/destinations/:destination_id/dlq/recoveries/:recovery_id": apitoken.Operator,
	"POST /api/v1/pipelines/:id/destinations/:destination_id/discard-dlq":                apitoken.Operator,
}

// handle registers a route behind the role the access matrix gives it;
// a change (any method but GET) is recorded in the audit log.
func (s *Server) handle(method, path string, h fiber.Handler) error {
	min, ok := accessMatrix[method+" "+path]
	if !ok {
		return fmt.Errorf("api: route %s %s has no entry in the access matrix (services/api/access.go)", method, path)
	}
	chain := []fiber.Handler{h}
	if connectsOut[method+" "+path] {
		chain = append([]fiber.Handler{s.limitOutbound}, chain...)
	}
	if method != fiber.MethodGet && method != fiber.MethodHead && !readOnlyPosts[path] {
		chain = append([]fiber.Handler{s.audited(method, path)}, chain...)
	}
	if min != apitoken.Public {
		chain = append([]fiber.Handler{s.require(min)}, chain...)
	}
	s.app.Add(method, path, chain...)
	return nil
}
