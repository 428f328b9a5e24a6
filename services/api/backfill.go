package api

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/pkg/apitoken"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/pgcatalog"
	"github.com/rosettacdc/rosetta/pkg/snapshot"
)

// Backfills and snapshots (docs/backfill.md): POST /pipelines/{id}/backfill
// records a job the backfill worker runs; starting a pipeline, adding a
// table to a started one, and POST /pipelines/{id}/refresh record snapshot
// jobs for tables that need one.

// maxBatchSize bounds the rows a backfill reads and publishes at a time:
// the worker holds a batch in memory, so a million wide rows would be
// gigabytes. 100,000 is past where larger batches stop paying.
const maxBatchSize = 100_000

// backfillRequest is the body of POST /pipelines/{id}/backfill.
type backfillRequest struct {
	Table          *string           `json:"table"`
	DestinationIDs []int64           `json:"destination_ids"`
	Filters        []snapshot.Filter `json:"filters"`
	BatchSize      *int              `json:"batch_size"`
}

// backfillView is a job and its progress.
type backfillView struct {
	ID             int64             `json:"id"`
	PipelineID     int64             `json:"pipeline_id"`
	Table          string            `json:"table"`
	Kind           string            `json:"kind"`
	DestinationIDs []int64           `json:"destination_ids"`
	Filters        []snapshot.Filter `json:"filters"`
	BatchSize      int               `json:"batch_size"`
	Status         string            `json:"status"`
	RowsCopied     int64             `json:"rows_copied"`
	RowsTotal      *int64            `json:"rows_total"`
	// Rate is rows_copied per second since the job started (until it
	// finished).
	Rate       float64         `json:"rate"`
	LastKey    json.RawMessage `json:"last_key"`
	Error      string          `json:"error"`
	Attempts   int             `json:"attempts"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// refreshView is the answer of POST /pipelines/{id}/refresh.
type refreshView struct {
	Created []backfillView `json:"created"`
}

func viewBackfill(j configstore.BackfillJob, now time.Time) backfillView {
	v := backfillView{ID: j.ID, PipelineID: j.PipelineID, Table: j.Table, Kind: j.Kind, DestinationIDs: j.DestinationIDs,
		Filters: make([]snapshot.Filter, len(j.Filters)), BatchSize: j.BatchSize, Status: string(j.Status), RowsCopied: j.RowsCopied,
		RowsTotal: j.RowsTotal, LastKey: j.LastKey, Error: j.Error, Attempts: j.Attempts, CreatedAt: j.CreatedAt,
		StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, UpdatedAt: j.UpdatedAt}
	for i, f := range j.Filters {
		v.Filters[i] = snapshot.Filter{Column: f.Column, Op: f.Op, Value: f.Value}
	}
	if v.DestinationIDs == nil {
		v.DestinationIDs = []int64{}
	}
	if j.StartedAt != nil {
		end := now
		if j.FinishedAt != nil {
			end = *j.FinishedAt
		}
		if secs := end.Sub(*j.StartedAt).Seconds(); secs > 0 {
			v.Rate = float64(j.RowsCopied) / secs
		}
	}
	return v
}

func pathJobID(c *fiber.Ctx) (int64, error) {
	raw := c.Params("job_id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest("job_id", "job_id %q in the path must be a positive integer", raw)
	}
	return id, nil
}

func (s *Server) pipelineOr404(ctx context.Context, id int64) (configstore.Pipeline, error) {
	p, err := s.store.GetPipeline(ctx, id)
	if errors.Is(err, configstore.ErrNotFound) {
		return p, notFound("pipeline %d does not exist", id)
	}
	return p, err
}

// input validates the request against the pipeline; filters are checked
// against the source's catalog by checkFilters.
func (r backfillRequest) input(p configstore.Pipeline) (configstore.BackfillInput, error) {
	in := configstore.BackfillInput{PipelineID: p.ID, Kind: configstore.JobKindBackfill, BatchSize: 10000}
	table, err := requiredString("table", r.Table, maxNameLen)
	if err != nil {
		return in, err
	}
	t, err := pgcatalog.ParseTable(table)
	if err != nil {
		return in, invalid("table", "%v", err)
	}
	if !slices.Contains(p.Tables, t.String()) {
		return in, invalid("table", "table %s is not in pipeline %d (its tables: %v)", t, p.ID, p.Tables)
	}
	in.Table = t.String()
	for _, id := range r.DestinationIDs {
		if !slices.Contains(p.DestinationIDs, id) {
			return in, invalid("destination_ids", "destination %d is not a destination of pipeline %d", id, p.ID)
		}
	}
	in.DestinationIDs = r.DestinationIDs
	if r.BatchSize != nil {
		if *r.BatchSize < 1 || *r.BatchSize > maxBatchSize {
			return in, invalid("batch_size", "batch_size must be from 1 to %d", maxBatchSize)
		}
		in.BatchSize = *r.BatchSize
	}
	if len(r.Filters) > snapshot.MaxFilters {
		return in, invalid("filters", "at most %d filters are allowed, got %d", snapshot.MaxFilters, len(r.Filters))
	}
	for _, f := range r.Filters {
		in.Filters = append(in.Filters, configstore.BackfillFilter{Column: f.Column, Op: f.Op, Value: f.Value})
	}
	return in, nil
}

// checkFilters loads the table from the source's catalog and checks the
// filters' columns, ops and values against it.
func (s *Server) checkFilters(ctx context.Context, p configstore.Pipeline, in configstore.BackfillInput, filters []snapshot.Filter) error {
	src, err := s.store.SourceWithSecrets(ctx, p.SourceID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	e := pgcatalog.Endpoint{Host: src.Host, Port: src.Port, Database: src.Database, User: src.User, Password: src.Password, Security: src.Security()}
	conn, err := pgcatalog.Connect(ctx, e)
	if err != nil {
		var pr *pgcatalog.Problem
		if errors.As(err, &pr) {
			return invalid("table", "source %q cannot be reached to check the table: %s", src.Name, pr.Msg)
		}
		return checkError(err, "", "table", src.Password)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	t, _ := pgcatalog.ParseTable(in.Table)
	table, err := snapshot.LoadTable(ctx, conn, t.Schema, t.Name)
	switch {
	case errors.Is(err, snapshot.ErrNoTable):
		return invalid("table", "table %s does not exist in source %q", in.Table, src.Name)
	case errors.Is(err, snapshot.ErrNoPrimaryKey):
		return invalid("table", "table %s has no primary key: backfills read in primary key order", in.Table)
	case err != nil:
		return checkError(err, "", "table", src.Password)
	}
	if err := snapshot.ValidateFilters(table, filters); err != nil {
		var fe *snapshot.FilterError
		if errors.As(err, &fe) {
			return invalid(fe.Field(), "%s", fe.Error())
		}
		return err
	}
	return nil
}

func (s *Server) createBackfill(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var req backfillRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	ctx := c.UserContext()
	p, err := s.pipelineOr404(ctx, id)
	if err != nil {
		return err
	}
	in, err := req.input(p)
	if err != nil {
		return err
	}
	if err := s.checkFilters(ctx, p, in, req.Filters); err != nil {
		return err
	}
	j, err := s.store.CreateBackfillJob(ctx, in)
	if err != nil {
		return fromStore(err)
	}
	c.Location("/api/v1/backfill/" + strconv.FormatInt(j.ID, 10))
	return c.Status(fiber.StatusCreated).JSON(viewBackfill(j, time.Now()))
}

func (s *Server) listBackfills(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	if _, err := s.pipelineOr404(c.UserContext(), id); err != nil {
		return err
	}
	jobs, total, err := s.store.ListBackfillJobs(c.UserContext(), id, pg)
	if err != nil {
		return err
	}
	now := time.Now()
	items := make([]backfillView, len(jobs))
	for i, j := range jobs {
		items[i] = forCaller(c, viewBackfill(j, now))
	}
	return c.JSON(listBody[backfillView]{Items: items, Total: total, Limit: pg.Limit, Offset: pg.Offset})
}

func (s *Server) getBackfill(c *fiber.Ctx) error {
	id, err := pathJobID(c)
	if err != nil {
		return err
	}
	j, err := s.store.GetBackfillJob(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("backfill job %d does not exist", id)
	}
	if err != nil {
		return err
	}
	return c.JSON(forCaller(c, viewBackfill(j, time.Now())))
}

// forCaller hides from a viewer what in a job is row data: the filters'
// values (an operator may filter on a customer's e-mail) and last_key (a
// primary key). Operators, who create backfills and read dead-lettered
// rows, see them. Counts stay: a viewer cannot choose the filters they
// count, so they cannot probe values with them.
func forCaller(c *fiber.Ctx, v backfillView) backfillView {
	if t, ok := caller(c); ok && t.Role.Allows(apitoken.Operator) {
		return v
	}
	for i := range v.Filters {
		v.Filters[i].Value = nil
	}
	v.LastKey = nil
	return v
}

// cancelBackfill cancels a PENDING or EXECUTING job; the worker stops at
// its next batch boundary. A finished job is a 409.
func (s *Server) cancelBackfill(c *fiber.Ctx) error {
	id, err := pathJobID(c)
	if err != nil {
		return err
	}
	j, ok, err := s.store.CancelBackfillJob(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("backfill job %d does not exist", id)
	}
	if err != nil {
		return err
	}
	if !ok {
		return &apiError{status: fiber.StatusConflict, msg: "backfill job " + strconv.FormatInt(id, 10) + " already finished: " + string(j.Status)}
	}
	return c.JSON(viewBackfill(j, time.Now()))
}

// refreshPipeline re-reads the pipeline and creates snapshot jobs for its
// tables that never had a completed snapshot (and have none running).
func (s *Server) refreshPipeline(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	p, err := s.pipelineOr404(c.UserContext(), id)
	if err != nil {
		return err
	}
	jobs, err := s.store.EnsureSnapshotJobs(c.UserContext(), p.ID, p.Tables, false)
	if err != nil {
		return err
	}
	out := refreshView{Created: []backfillView{}}
	now := time.Now()
	for _, j := range jobs {
		out.Created = append(out.Created, viewBackfill(j, now))
	}
	return c.JSON(out)
}

// snapshotNewTables records snapshot jobs for a started pipeline's tables
// that never had one: every table on the first start, an added table on
// a later update (unless the pipeline's snapshot setting is off).
func (s *Server) snapshotNewTables(ctx context.Context, p configstore.Pipeline) error {
	if p.Status != configstore.StatusStart {
		return nil
	}
	_, err := s.store.EnsureSnapshotJobs(ctx, p.ID, p.Tables, true)
	return err
}
