package api

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/pgcatalog"
)

// pipelineRequest is the body of POST and PUT /pipelines.
type pipelineRequest struct {
	Name           *string  `json:"name"`
	SourceID       *int64   `json:"source_id"`
	DestinationIDs []int64  `json:"destination_ids"`
	Tables         []string `json:"tables"`
	// Snapshot false skips the initial snapshot of the tables (default
	// true; docs/backfill.md).
	Snapshot *bool `json:"snapshot"`
}

type pipelineView struct {
	ID             int64     `json:"id"`
	Name           string    `json:"name"`
	SourceID       int64     `json:"source_id"`
	DestinationIDs []int64   `json:"destination_ids"`
	Tables         []string  `json:"tables"`
	Status         string    `json:"status"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// pipelineDetail is GET /pipelines/{id}: the pipeline with what capture
// and each sink last reported.
type pipelineDetail struct {
	pipelineView
	SourceState  sourceStateView        `json:"source_state"`
	Destinations []destinationStateView `json:"destinations"`
}

type sourceStateView struct {
	State        string     `json:"state"` // UNKNOWN until capture reports
	LastError    string     `json:"last_error"`
	ConfirmedLSN string     `json:"confirmed_lsn"`
	UpdatedAt    *time.Time `json:"updated_at"`
}

// destinationStateView is one destination of GET /pipelines/{id} (and of
// GET /status): what its sink reported, and the health and lag computed
// from it (computeLag).
type destinationStateView struct {
	DestinationID int64  `json:"destination_id"`
	Name          string `json:"name"`
	Type          string `json:"type"`
	// Health is HEALTHY, LAGGING, ERROR, PAUSED or UNKNOWN; Reason says
	// why it is not HEALTHY.
	Health        string     `json:"health"`
	Reason        string     `json:"reason"`
	LastError     string     `json:"last_error"`
	LastAppliedAt *time.Time `json:"last_applied_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	// LagSeconds and LagBytes are how far behind the source the
	// destination is (0 when nothing is pending); null when unknown.
	LagSeconds *float64 `json:"lag_seconds"`
	LagBytes   *int64   `json:"lag_bytes"`
	// Pending is the changes in the stream the destination's consumer has
	// not acked; null when NATS did not say.
	Pending *int64 `json:"pending"`
	// Throughput is the changes per second applied over the last minute.
	Throughput float64 `json:"throughput"`
	// AppliedCommitLSN and AppliedCommitTime are the source commit LSN and
	// time of the newest change applied; SourceLSN is the source position
	// lag_bytes is measured from.
	AppliedCommitLSN  string     `json:"applied_commit_lsn"`
	AppliedCommitTime *time.Time `json:"applied_commit_time"`
	SourceLSN         string     `json:"source_lsn"`
	// DLQ is the destination's dead-letter queue for this pipeline's
	// source: depth and oldest entry per table.
	DLQ *dlqSummaryView `json:"dlq"`
}

// Caps on one pipeline: each table is checked against the source on every
// create and update and has its own subject and guard bookkeeping at
// every destination, and each destination its own consumer and sink.
const (
	maxPipelineTables       = 1000
	maxPipelineDestinations = 20
)

func viewPipeline(p configstore.Pipeline) pipelineView {
	ids := p.DestinationIDs
	if ids == nil {
		ids = []int64{}
	}
	return pipelineView{ID: p.ID, Name: p.Name, SourceID: p.SourceID, DestinationIDs: ids, Tables: p.Tables,
		Status: string(p.Status), CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

// input validates the request alone; references and tables are checked
// by checkPipeline.
func (r pipelineRequest) input() (configstore.PipelineInput, error) {
	var in configstore.PipelineInput
	var err error
	if in.Name, err = requiredString("name", r.Name, maxNameLen); err != nil {
		return in, err
	}
	if r.SourceID == nil {
		return in, invalid("source_id", "source_id is required")
	}
	if *r.SourceID <= 0 {
		return in, invalid("source_id", "source_id must be a positive integer")
	}
	in.SourceID = *r.SourceID
	if len(r.DestinationIDs) == 0 {
		return in, invalid("destination_ids", "destination_ids must list at least one destination id")
	}
	if len(r.DestinationIDs) > maxPipelineDestinations {
		return in, invalid("destination_ids", "a pipeline has at most %d destinations, got %d", maxPipelineDestinations, len(r.DestinationIDs))
	}
	if len(r.Tables) > maxPipelineTables {
		return in, invalid("tables", "a pipeline has at most %d tables, got %d: split them over several pipelines", maxPipelineTables, len(r.Tables))
	}
	seen := map[int64]bool{}
	for _, id := range r.DestinationIDs {
		if id <= 0 {
			return in, invalid("destination_ids", "destination_ids must hold positive integers")
		}
		if seen[id] {
			return in, invalid("destination_ids", "destination_ids lists %d twice", id)
		}
		seen[id] = true
	}
	in.DestinationIDs = r.DestinationIDs
	tables, err := pgcatalog.ParseTables(r.Tables)
	if err != nil {
		var p *pgcatalog.Problem
		if errors.As(err, &p) {
			return in, fromProblem(p, "", "tables")
		}
		return in, err
	}
	for _, t := range tables {
		in.Tables = append(in.Tables, t.String())
	}
	return in, nil
}

// checkPipeline checks that the source and destinations exist, that the
// source can be reached and captured from, and that every table can be
// replicated.
func (s *Server) checkPipeline(ctx context.Context, in configstore.PipelineInput) error {
	for _, id := range in.DestinationIDs {
		if _, err := s.store.GetDestination(ctx, id); errors.Is(err, configstore.ErrNotFound) {
			return invalid("destination_ids", "destination %d does not exist", id)
		} else if err != nil {
			return err
		}
	}
	src, err := s.store.SourceWithSecrets(ctx, in.SourceID)
	if errors.Is(err, configstore.ErrNotFound) {
		return invalid("source_id", "source %d does not exist", in.SourceID)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	e := pgcatalog.Endpoint{Host: src.Host, Port: src.Port, Database: src.Database, User: src.User, Password: src.Password, Security: src.Security()}
	conn, err := pgcatalog.Connect(ctx, e)
	if err != nil {
		var p *pgcatalog.Problem
		if errors.As(err, &p) {
			return invalid("source_id", "source %q cannot be reached to check the tables: %s (fix the source with PUT /api/v1/sources/%d)", src.Name, p.Msg, src.ID)
		}
		return checkError(err, "", "source_id", src.Password)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := pgcatalog.CheckSource(ctx, conn); err != nil {
		return checkError(err, "", "source_id", src.Password)
	}
	tables := make([]pgcatalog.Table, 0, len(in.Tables))
	for _, name := range in.Tables {
		t, err := pgcatalog.ParseTable(name)
		if err != nil {
			return invalid("tables", "%v", err)
		}
		tables = append(tables, t)
	}
	if err := pgcatalog.CheckTables(ctx, conn, tables); err != nil {
		return checkError(err, "", "tables", src.Password)
	}
	return nil
}

func (s *Server) createPipeline(c *fiber.Ctx) error {
	var req pipelineRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	in, err := req.input()
	if err != nil {
		return err
	}
	if err := s.checkPipeline(c.UserContext(), in); err != nil {
		return err
	}
	p, err := s.store.CreatePipeline(c.UserContext(), in)
	if err != nil {
		return fromStore(err)
	}
	if req.Snapshot != nil {
		if err := s.store.SetPipelineSnapshot(c.UserContext(), p.ID, *req.Snapshot); err != nil {
			return err
		}
	}
	s.publish(c, contracts.KindPipeline, p.ID, contracts.ActionCreated)
	c.Location("/api/v1/pipelines/" + strconv.FormatInt(p.ID, 10))
	return c.Status(fiber.StatusCreated).JSON(viewPipeline(p))
}

func (s *Server) listPipelines(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	ps, total, err := s.store.ListPipelines(c.UserContext(), pg)
	if err != nil {
		return err
	}
	items := make([]pipelineView, len(ps))
	for i, p := range ps {
		items[i] = viewPipeline(p)
	}
	return c.JSON(listBody[pipelineView]{Items: items, Total: total, Limit: pg.Limit, Offset: pg.Offset})
}

func (s *Server) getPipeline(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	p, err := s.store.GetPipeline(ctx, id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("pipeline %d does not exist", id)
	}
	if err != nil {
		return err
	}
	out := pipelineDetail{pipelineView: viewPipeline(p), SourceState: sourceStateView{State: "UNKNOWN"}, Destinations: []destinationStateView{}}
	ss, err := s.store.SourceStateOf(ctx, p.SourceID)
	switch {
	case err == nil:
		t := ss.UpdatedAt
		out.SourceState = sourceStateView{State: ss.State, LastError: ss.LastError, ConfirmedLSN: ss.ConfirmedLSN, UpdatedAt: &t}
	case !errors.Is(err, configstore.ErrNotFound):
		return err
	}
	states, err := s.store.DestinationStates(ctx, id)
	if err != nil {
		return err
	}
	sources, err := s.store.LagSources(ctx, []int64{p.SourceID})
	if err != nil {
		return err
	}
	out.Destinations, err = s.destinationStatuses(ctx, p, states, sources, time.Now())
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *Server) updatePipeline(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var req pipelineRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	in, err := req.input()
	if err != nil {
		return err
	}
	if _, err := s.store.GetPipeline(c.UserContext(), id); errors.Is(err, configstore.ErrNotFound) {
		return notFound("pipeline %d does not exist", id)
	} else if err != nil {
		return err
	}
	if err := s.checkPipeline(c.UserContext(), in); err != nil {
		return err
	}
	p, err := s.store.UpdatePipeline(c.UserContext(), id, in)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("pipeline %d does not exist", id)
	}
	if err != nil {
		return fromStore(err)
	}
	if req.Snapshot != nil {
		if err := s.store.SetPipelineSnapshot(c.UserContext(), p.ID, *req.Snapshot); err != nil {
			return err
		}
	}
	if err := s.snapshotNewTables(c.UserContext(), p); err != nil {
		return err
	}
	s.publish(c, contracts.KindPipeline, p.ID, contracts.ActionUpdated)
	return c.JSON(viewPipeline(p))
}

func (s *Server) startPipeline(c *fiber.Ctx) error {
	return s.setStatus(c, configstore.StatusStart, contracts.ActionStarted)
}

func (s *Server) pausePipeline(c *fiber.Ctx) error {
	return s.setStatus(c, configstore.StatusPause, contracts.ActionPaused)
}

// setStatus records START or PAUSE. Repeating it is harmless: the event is
// published again and services converge to the same state.
func (s *Server) setStatus(c *fiber.Ctx, status configstore.PipelineStatus, action contracts.ConfigAction) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	p, err := s.store.SetPipelineStatus(c.UserContext(), id, status)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("pipeline %d does not exist", id)
	}
	if err != nil {
		return err
	}
	if err := s.snapshotNewTables(c.UserContext(), p); err != nil {
		return err
	}
	s.publish(c, contracts.KindPipeline, p.ID, action)
	return c.JSON(viewPipeline(p))
}
