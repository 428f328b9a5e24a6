package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/pgcatalog"
)

// Dead-letter queue endpoints. The API reads and discards entries in Redis
// itself (pkg/dlq); recoveries are replayed by the sink service, which owns
// the destination drivers: the API records a recovery in the config
// database (dlq_recoveries) and a sink running the pipeline destination
// claims and runs it. Services never call each other.

// DeadLetters is what the API does with dead-letter queues; *dlq.Queue
// implements it.
type DeadLetters interface {
	Stats(ctx context.Context, sourceID, destinationID int64) ([]dlq.TableStats, error)
	List(ctx context.Context, o dlq.ListOptions) (dlq.Page, error)
	Discard(ctx context.Context, sourceID, destinationID int64, table string) (int64, error)
}

var _ DeadLetters = (*dlq.Queue)(nil)

// UseDeadLetters enables the dead-letter queue endpoints. Without it (no
// ROSETTA_REDIS_URL) they answer 409 saying how to enable them. Call it
// before serving.
func (s *Server) UseDeadLetters(d DeadLetters) { s.dlq = d }

// maxValueLen bounds each before/after value shown in a listed entry; keys
// are never cut.
const maxValueLen = 256

// maxRecoverCount bounds max_count of one recovery.
const maxRecoverCount = 10_000_000

func dlqDisabled() *apiError {
	return &apiError{status: fiber.StatusConflict,
		msg: "dead-letter queues are disabled: set ROSETTA_REDIS_URL for the api and sink services to enable them; until then changes a destination rejects are retried, with the error in the destination's health"}
}

func dlqUnavailable(err error) *apiError {
	return &apiError{status: fiber.StatusServiceUnavailable, msg: "the dead-letter queue (Redis) is unavailable: " + err.Error()}
}

type dlqTableView struct {
	DestinationID int64      `json:"destination_id"`
	Table         string     `json:"table"`
	Depth         int64      `json:"depth"`
	OldestID      string     `json:"oldest_id"`
	OldestAt      *time.Time `json:"oldest_at"`
}

// dlqSummaryView is a destination's "dlq" in GET /pipelines/{id}.
type dlqSummaryView struct {
	Enabled  bool           `json:"enabled"`
	Depth    int64          `json:"depth"`
	OldestAt *time.Time     `json:"oldest_at"`
	Tables   []dlqTableView `json:"tables"`
	// Error says why the numbers are missing (Redis unavailable).
	Error string `json:"error,omitempty"`
}

// pipelineDLQView is GET /pipelines/{id}/dlq.
type pipelineDLQView struct {
	Enabled bool           `json:"enabled"`
	Items   []dlqTableView `json:"items"`
}

type dlqPositionView struct {
	Stream  string `json:"stream"`
	Seq     uint64 `json:"seq"`
	Subject string `json:"subject"`
}

// dlqEntryView is one entry of GET .../dlq.
type dlqEntryView struct {
	ID         string `json:"id"`
	Table      string `json:"table"`
	PipelineID int64  `json:"pipeline_id"`
	Op         string `json:"op"`
	// Key is the changed row's key, never cut.
	Key contracts.Row `json:"key"`
	// Change is the change envelope with values longer than maxValueLen
	// cut (Truncated says so); for a message that is not a change, its
	// text.
	Change        any             `json:"change"`
	Truncated     bool            `json:"truncated"`
	ErrorClass    string          `json:"error_class"`
	Error         string          `json:"error"`
	Attempts      int             `json:"attempts"`
	FirstFailedAt time.Time       `json:"first_failed_at"`
	LastFailedAt  time.Time       `json:"last_failed_at"`
	Position      dlqPositionView `json:"position"`
}

type dlqPageView struct {
	Items []dlqEntryView `json:"items"`
	Total int64          `json:"total"`
	Limit int            `json:"limit"`
	// Next is the "after" of the following page; null on the last one.
	Next *string `json:"next"`
}

type recoverRequest struct {
	Table    *string `json:"table"`
	MaxCount *int64  `json:"max_count"`
}

type discardRequest struct {
	Table *string `json:"table"`
}

type discardView struct {
	Discarded int64   `json:"discarded"`
	Table     *string `json:"table"`
}

type recoveryView struct {
	ID            int64      `json:"id"`
	PipelineID    int64      `json:"pipeline_id"`
	DestinationID int64      `json:"destination_id"`
	Table         *string    `json:"table"`
	MaxCount      *int64     `json:"max_count"`
	Status        string     `json:"status"`
	Replayed      int64      `json:"replayed"`
	Failed        int64      `json:"failed"`
	LastError     string     `json:"last_error"`
	Runs          int        `json:"runs"`
	CreatedAt     time.Time  `json:"created_at"`
	StartedAt     *time.Time `json:"started_at"`
	FinishedAt    *time.Time `json:"finished_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

func viewRecovery(r configstore.DLQRecovery) recoveryView {
	v := recoveryView{ID: r.ID, PipelineID: r.PipelineID, DestinationID: r.DestinationID, Status: string(r.Status),
		Replayed: r.Replayed, Failed: r.Failed, LastError: r.LastError, Runs: r.Runs, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if r.Table != "" {
		v.Table = &r.Table
	}
	if r.MaxCount > 0 {
		v.MaxCount = &r.MaxCount
	}
	v.StartedAt = timePtr(r.StartedAt)
	v.FinishedAt = timePtr(r.FinishedAt)
	return v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// pathInt parses a positive integer path parameter.
func pathInt(c *fiber.Ctx, name string) (int64, error) {
	raw := c.Params(name)
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest(name, "%s %q in the path must be a positive integer", name, raw)
	}
	return id, nil
}

// pipelineDestination resolves /pipelines/{id}/destinations/{destination_id}:
// the pipeline, and the destination id when it is one of the pipeline's.
func (s *Server) pipelineDestination(c *fiber.Ctx) (configstore.Pipeline, int64, error) {
	id, err := pathID(c)
	if err != nil {
		return configstore.Pipeline{}, 0, err
	}
	destID, err := pathInt(c, "destination_id")
	if err != nil {
		return configstore.Pipeline{}, 0, err
	}
	p, err := s.store.GetPipeline(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return p, 0, notFound("pipeline %d does not exist", id)
	}
	if err != nil {
		return p, 0, err
	}
	for _, d := range p.DestinationIDs {
		if d == destID {
			return p, destID, nil
		}
	}
	return p, 0, notFound("destination %d is not a destination of pipeline %d", destID, id)
}

// optionalTable validates an optional "table" (schema.table) field.
func optionalTable(field string, v *string) (string, error) {
	if v == nil {
		return "", nil
	}
	if _, err := pgcatalog.ParseTable(*v); err != nil {
		return "", invalid(field, "%s: %v", field, err)
	}
	if _, err := optionalString(field, *v, 2*maxIdentLen+1, true); err != nil {
		return "", err
	}
	return *v, nil
}

// decodeOptionalBody decodes a JSON object body into dst; an empty body
// leaves dst as it is.
func decodeOptionalBody(c *fiber.Ctx, dst any) error {
	if len(bytes.TrimSpace(c.Body())) == 0 {
		return nil
	}
	return decodeBody(c, dst)
}

// dlqStats returns the queue stats of each destination of p, by
// destination id. Redis being down is an error the caller decides about.
func (s *Server) dlqStats(ctx context.Context, p configstore.Pipeline) (map[int64][]dlq.TableStats, error) {
	out := map[int64][]dlq.TableStats{}
	for _, d := range p.DestinationIDs {
		st, err := s.dlq.Stats(ctx, p.SourceID, d)
		if err != nil {
			return nil, err
		}
		out[d] = st
	}
	return out, nil
}

func tableViews(destID int64, stats []dlq.TableStats) []dlqTableView {
	out := make([]dlqTableView, 0, len(stats))
	for _, st := range stats {
		out = append(out, dlqTableView{DestinationID: destID, Table: st.Table, Depth: st.Depth, OldestID: st.OldestID, OldestAt: timePtr(st.OldestAt)})
	}
	return out
}

// dlqSummaries is the "dlq" of every destination of GET /pipelines/{id}.
// Redis being slow or down does not fail the request: the summaries say
// so in "error".
func (s *Server) dlqSummaries(ctx context.Context, p configstore.Pipeline) map[int64]*dlqSummaryView {
	out := map[int64]*dlqSummaryView{}
	if s.dlq == nil {
		for _, d := range p.DestinationIDs {
			out[d] = &dlqSummaryView{Tables: []dlqTableView{}}
		}
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HealthTimeout)
	defer cancel()
	stats, err := s.dlqStats(ctx, p)
	for _, d := range p.DestinationIDs {
		sum := &dlqSummaryView{Enabled: true, Tables: []dlqTableView{}}
		if err != nil {
			sum.Error = "the dead-letter queue (Redis) is unavailable: " + err.Error()
		} else {
			sum.Tables = tableViews(d, stats[d])
			for _, t := range sum.Tables {
				sum.Depth += t.Depth
				if t.OldestAt != nil && (sum.OldestAt == nil || t.OldestAt.Before(*sum.OldestAt)) {
					sum.OldestAt = t.OldestAt
				}
			}
		}
		out[d] = sum
	}
	return out
}

// getPipelineDLQ is GET /pipelines/{id}/dlq: depth and oldest entry per
// destination and table.
func (s *Server) getPipelineDLQ(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	p, err := s.store.GetPipeline(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("pipeline %d does not exist", id)
	}
	if err != nil {
		return err
	}
	if s.dlq == nil {
		return c.JSON(pipelineDLQView{Items: []dlqTableView{}})
	}
	stats, err := s.dlqStats(c.UserContext(), p)
	if err != nil {
		return dlqUnavailable(err)
	}
	out := pipelineDLQView{Enabled: true, Items: []dlqTableView{}}
	for _, d := range p.DestinationIDs {
		out.Items = append(out.Items, tableViews(d, stats[d])...)
	}
	return c.JSON(out)
}

// listDLQ is GET /pipelines/{id}/destinations/{destination_id}/dlq.
func (s *Server) listDLQ(c *fiber.Ctx) error {
	p, destID, err := s.pipelineDestination(c)
	if err != nil {
		return err
	}
	o := dlq.ListOptions{SourceID: p.SourceID, DestinationID: destID, Limit: defaultLimit}
	if raw := c.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxLimit {
			return invalid("limit", "limit must be an integer from 1 to %d", maxLimit)
		}
		o.Limit = n
	}
	if raw := c.Query("table"); raw != "" {
		if o.Table, err = optionalTable("table", &raw); err != nil {
			return err
		}
	}
	if raw := c.Query("after"); raw != "" {
		if _, _, err := dlq.ParseCursor(raw); err != nil {
			return invalid("after", "after must be the \"next\" of a previous page")
		}
		o.After = raw
	}
	if s.dlq == nil {
		return dlqDisabled()
	}
	page, err := s.dlq.List(c.UserContext(), o)
	if err != nil {
		return dlqUnavailable(err)
	}
	out := dlqPageView{Items: make([]dlqEntryView, 0, len(page.Entries)), Total: page.Total, Limit: o.Limit}
	if page.Next != "" {
		out.Next = &page.Next
	}
	for _, e := range page.Entries {
		out.Items = append(out.Items, viewEntry(e))
	}
	return c.JSON(out)
}

// viewEntry shows an entry with long values cut; the key is never cut.
func viewEntry(e dlq.Entry) dlqEntryView {
	v := dlqEntryView{ID: e.ID, Table: e.Table, PipelineID: e.PipelineID, ErrorClass: e.ErrorClass, Error: e.Error,
		Attempts: e.Attempts, FirstFailedAt: e.FirstFailedAt, LastFailedAt: e.LastFailedAt,
		Position: dlqPositionView{Stream: e.Stream, Seq: e.StreamSeq, Subject: e.Subject}}
	c, err := letterChange(e.Change)
	if err != nil || !c.Op.Valid() {
		// Not a change: show its text.
		text := string(e.Change)
		if !utf8.ValidString(text) {
			text = fmt.Sprintf("%q", e.Change)
		}
		cut := cutText(text, 4*maxValueLen)
		v.Change, v.Truncated = cut, cut != text
		return v
	}
	v.Op, v.Key = string(c.Op), c.Key
	for _, row := range []contracts.Row{c.Before, c.After} {
		for col, raw := range row {
			if len(raw) <= maxValueLen {
				continue
			}
			var s string
			if json.Unmarshal(raw, &s) != nil {
				s = string(raw)
			}
			cut, _ := json.Marshal(cutText(s, maxValueLen))
			row[col] = cut
			v.Truncated = true
		}
	}
	v.Change = c
	return v
}

// letterChange reads an entry's change: a version 1 envelope, or a version
// 2 message of one change (the sink dead-letters one change of a message
// of several that way).
func letterChange(body []byte) (contracts.Change, error) {
	var c contracts.Change
	if err := json.Unmarshal(body, &c); err != nil || c.V != contracts.MessageVersion {
		return c, err
	}
	m, err := contracts.DecodeMessage(body)
	if err != nil {
		return c, err
	}
	if len(m.Changes) != 1 {
		return c, fmt.Errorf("dead letter holds %d changes, want one", len(m.Changes))
	}
	return m.Change(0), nil
}

// cutText cuts s to at most n bytes on a rune boundary, marking the cut.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// recoverDLQ is POST .../recover-dlq: it records a recovery for a sink to
// replay and answers 202 with it; GET .../dlq/recoveries/{recovery_id}
// follows it.
func (s *Server) recoverDLQ(c *fiber.Ctx) error {
	p, destID, err := s.pipelineDestination(c)
	if err != nil {
		return err
	}
	var req recoverRequest
	if err := decodeOptionalBody(c, &req); err != nil {
		return err
	}
	in := configstore.DLQRecoveryInput{PipelineID: p.ID, DestinationID: destID}
	if in.Table, err = optionalTable("table", req.Table); err != nil {
		return err
	}
	if req.MaxCount != nil {
		if *req.MaxCount < 1 || *req.MaxCount > maxRecoverCount {
			return invalid("max_count", "max_count must be an integer from 1 to %d", maxRecoverCount)
		}
		in.MaxCount = *req.MaxCount
	}
	if s.dlq == nil {
		return dlqDisabled()
	}
	if p.Status != configstore.StatusStart {
		return &apiError{status: fiber.StatusConflict, msg: fmt.Sprintf(
			"pipeline %d is paused: start it first (POST /api/v1/pipelines/%d/start); a recovery replays through the pipeline's running sink", p.ID, p.ID)}
	}
	r, err := s.store.CreateDLQRecovery(c.UserContext(), in)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("destination %d is not a destination of pipeline %d", destID, p.ID)
	}
	if err != nil {
		return fromStore(err)
	}
	c.Location(fmt.Sprintf("/api/v1/pipelines/%d/destinations/%d/dlq/recoveries/%d", p.ID, destID, r.ID))
	return c.Status(fiber.StatusAccepted).JSON(viewRecovery(r))
}

// getRecovery is GET .../dlq/recoveries/{recovery_id}.
func (s *Server) getRecovery(c *fiber.Ctx) error {
	p, destID, err := s.pipelineDestination(c)
	if err != nil {
		return err
	}
	rid, err := pathInt(c, "recovery_id")
	if err != nil {
		return err
	}
	r, err := s.store.GetDLQRecovery(c.UserContext(), rid)
	if errors.Is(err, configstore.ErrNotFound) || err == nil && (r.PipelineID != p.ID || r.DestinationID != destID) {
		return notFound("recovery %d of pipeline %d destination %d does not exist", rid, p.ID, destID)
	}
	if err != nil {
		return err
	}
	return c.JSON(viewRecovery(r))
}

// discardDLQ is POST .../discard-dlq: it deletes the entries of one table
// (or every table) of the destination's queue, for good.
func (s *Server) discardDLQ(c *fiber.Ctx) error {
	p, destID, err := s.pipelineDestination(c)
	if err != nil {
		return err
	}
	var req discardRequest
	if err := decodeOptionalBody(c, &req); err != nil {
		return err
	}
	table, err := optionalTable("table", req.Table)
	if err != nil {
		return err
	}
	if s.dlq == nil {
		return dlqDisabled()
	}
	n, err := s.dlq.Discard(c.UserContext(), p.SourceID, destID, table)
	if err != nil {
		return dlqUnavailable(err)
	}
	s.log.Info("dead-letter entries discarded", "pipeline", p.ID, "destination", destID, "table", table, "discarded", n)
	out := discardView{Discarded: n}
	if table != "" {
		out.Table = &table
	}
	return c.JSON(out)
}
