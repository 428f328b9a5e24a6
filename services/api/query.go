package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/destquery"
)

// DuckDBQuerier runs a read-only query on a DuckDB destination file through
// the process that holds it (destquery.Querier).
type DuckDBQuerier interface {
	Query(ctx context.Context, path string, req destquery.Request) (*destquery.Result, error)
}

// UseDuckDBQueries serves POST /destinations/{id}/query with q. Without it
// the route answers 409.
func (s *Server) UseDuckDBQueries(q DuckDBQuerier) { s.queries = q }

// queryRequest is the body of POST /destinations/{id}/query.
type queryRequest struct {
	SQL       string `json:"sql"`
	Limit     *int   `json:"limit"`
	TimeoutMS *int   `json:"timeout_ms"`
}

type queryView struct {
	Columns   []string    `json:"columns"`
	Types     []string    `json:"types"`
	Rows      [][]*string `json:"rows"`
	Truncated bool        `json:"truncated"`
	ElapsedMS int64       `json:"elapsed_ms"`
}

// queryDestination answers POST /destinations/{id}/query: one read-only
// statement on a DuckDB destination's file, with a row limit and a
// timeout, run by whichever process holds the file (pkg/destquery).
func (s *Server) queryDestination(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var req queryRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	dq := destquery.Request{SQL: req.SQL}
	if req.Limit != nil {
		if *req.Limit < 1 || *req.Limit > destquery.MaxLimit {
			return invalid("limit", "limit must be from 1 to %d rows", destquery.MaxLimit)
		}
		dq.Limit = *req.Limit
	}
	if req.TimeoutMS != nil {
		if *req.TimeoutMS < 1 || time.Duration(*req.TimeoutMS)*time.Millisecond > destquery.MaxTimeout {
			return invalid("timeout_ms", "timeout_ms must be from 1 to %d", destquery.MaxTimeout.Milliseconds())
		}
		dq.Timeout = time.Duration(*req.TimeoutMS) * time.Millisecond
	}
	if req.SQL == "" {
		return invalid("sql", "sql is required: one read-only statement, such as SELECT count(*) FROM main.orders")
	}
	d, err := s.store.GetDestination(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("destination %d does not exist", id)
	}
	if err != nil {
		return err
	}
	if d.Type != "duckdb" {
		return invalid("", "destination %s is a %s destination: queries are served on duckdb destinations only", d.Name, d.Type)
	}
	if s.queries == nil {
		return &apiError{status: fiber.StatusConflict, msg: "DuckDB queries are not available in this process"}
	}
	path, _ := d.Config["path"].(string)
	// The query's own timeout bounds it; the request's deadline (which may
	// be shorter) is not extended.
	ctx := c.UserContext()
	start := time.Now()
	res, err := s.queries.Query(ctx, path, dq)
	switch {
	case errors.Is(err, destquery.ErrNoFile):
		return &apiError{status: fiber.StatusConflict, msg: fmt.Sprintf("destination %s has no file yet: nothing was written to %s", d.Name, path)}
	case errors.Is(err, destquery.ErrHeldElsewhere):
		return &apiError{status: fiber.StatusServiceUnavailable, msg: fmt.Sprintf("destination %s's file is held by a process that does not serve queries; try again shortly", d.Name)}
	case err != nil:
		// Refused statements, SQL errors, timeouts: the query's fault.
		return invalid("sql", "%v", err)
	}
	return c.JSON(queryView{Columns: res.Columns, Types: res.Types, Rows: res.Rows, Truncated: res.Truncated, ElapsedMS: time.Since(start).Milliseconds()})
}
