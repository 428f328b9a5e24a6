package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/destquery"
	"github.com/rosettacdc/rosetta/pkg/pgcatalog"
	"github.com/rosettacdc/rosetta/pkg/verify"
	"github.com/rosettacdc/rosetta/services/sink/drivers/duckdb"
	"github.com/rosettacdc/rosetta/services/sink/drivers/postgres"
)

// VerifyRequest is the body of POST /pipelines/{id}/verify and what
// `rosetta verify` asks for.
type VerifyRequest struct {
	// Tables to compare ("schema.table" of the pipeline); empty: all.
	Tables []string `json:"tables"`
	// DestinationIDs to compare at; empty: every destination.
	DestinationIDs []int64 `json:"destination_ids"`
	// Backfill creates, for each table that differs at a destination,
	// backfill jobs of its missing and differing keys at that destination.
	Backfill bool `json:"backfill"`
	// ChunkRows is the number of source rows per checksummed key range.
	ChunkRows *int `json:"chunk_rows"`
}

// VerifyView is the answer: one result per table and destination, and the
// backfill jobs created.
type VerifyView struct {
	PipelineID int64                `json:"pipeline_id"`
	Equal      bool                 `json:"equal"`
	Results    []verify.TableResult `json:"results"`
	Backfills  []backfillView       `json:"backfills"`
	// BackfillErrors says why differing keys got no backfill (a
	// composite key with too many differing keys, for example).
	BackfillErrors []string `json:"backfill_errors"`
}

const maxVerifyChunkRows = 100_000

// Verifier compares a pipeline's tables at its source and destinations
// (pkg/verify) with the stored credentials; the API and `rosetta verify`
// share it.
type Verifier struct {
	Store   *configstore.Store
	Querier *destquery.Querier // reaches DuckDB files through their holder
	// ConnectTimeout bounds each connection to the source or a destination.
	ConnectTimeout time.Duration
}

// check validates req against p; the errors are 4xx apiErrors.
func (r VerifyRequest) check(p configstore.Pipeline) error {
	for _, t := range r.Tables {
		if !slices.Contains(p.Tables, t) {
			return invalid("tables", "table %s is not in pipeline %d (its tables: %v)", t, p.ID, p.Tables)
		}
	}
	for _, id := range r.DestinationIDs {
		if !slices.Contains(p.DestinationIDs, id) {
			return invalid("destination_ids", "destination %d is not a destination of pipeline %d", id, p.ID)
		}
	}
	if r.ChunkRows != nil && (*r.ChunkRows < 1 || *r.ChunkRows > maxVerifyChunkRows) {
		return invalid("chunk_rows", "chunk_rows must be from 1 to %d", maxVerifyChunkRows)
	}
	return nil
}

// Verify compares pipeline id as req asks. progress may be nil. Errors
// that are the request's fault are *apiError (a 4xx); a missing pipeline
// is a 404.
func (v Verifier) Verify(ctx context.Context, id int64, req VerifyRequest, progress func(verify.Progress)) (VerifyView, error) {
	view := VerifyView{PipelineID: id, Backfills: []backfillView{}, BackfillErrors: []string{}}
	p, err := v.Store.GetPipeline(ctx, id)
	if errors.Is(err, configstore.ErrNotFound) {
		return view, notFound("pipeline %d does not exist", id)
	}
	if err != nil {
		return view, err
	}
	if err := req.check(p); err != nil {
		return view, err
	}
	tables := req.Tables
	if len(tables) == 0 {
		tables = p.Tables
	}
	destIDs := req.DestinationIDs
	if len(destIDs) == 0 {
		destIDs = p.DestinationIDs
	}
	if v.ConnectTimeout <= 0 {
		v.ConnectTimeout = 10 * time.Second
	}
	src, err := v.Store.SourceWithSecrets(ctx, p.SourceID)
	if err != nil {
		return view, fmt.Errorf("read source %d: %w", p.SourceID, err)
	}
	cctx, cancel := context.WithTimeout(ctx, v.ConnectTimeout)
	defer cancel()
	srcConn, err := pgcatalog.Connect(cctx, pgcatalog.Endpoint{Host: src.Host, Port: src.Port, Database: src.Database,
		User: src.User, Password: src.Password, Security: src.Security()})
	if err != nil {
		var pr *pgcatalog.Problem
		if errors.As(err, &pr) {
			return view, &apiError{status: fiber.StatusBadGateway, msg: fmt.Sprintf("source %q cannot be reached: %s", src.Name, pr.Msg)}
		}
		return view, fmt.Errorf("connect to source %q: %w", src.Name, err)
	}
	defer srcConn.Close(context.WithoutCancel(ctx))

	var dests []verify.Destination
	var ids []int64
	var unsupported []verify.TableResult
	for _, did := range destIDs {
		d, closeDest, named, err := v.openDestination(ctx, did)
		if err != nil {
			for _, t := range tables {
				unsupported = append(unsupported, verify.TableResult{Table: t, DestinationID: did, Destination: named.name,
					DestinationType: named.typ, Status: verify.StatusError, Error: err.Error(), Keys: []verify.KeyDiff{}})
			}
			continue
		}
		defer closeDest()
		dests = append(dests, d)
		ids = append(ids, did)
	}
	opts := verify.Options{Progress: progress}
	if req.ChunkRows != nil {
		opts.ChunkRows = *req.ChunkRows
	}
	results, err := verify.Run(ctx, srcConn, tables, dests, ids, opts)
	if err != nil {
		return view, err
	}
	view.Results = append(results, unsupported...)
	view.Equal = true
	for _, r := range view.Results {
		if r.Status != verify.StatusEqual {
			view.Equal = false
		}
	}
	if !req.Backfill {
		return view, nil
	}
	for _, r := range view.Results {
		if r.Status != verify.StatusDifferent {
			continue
		}
		ins, err := verify.Backfills(p.ID, r)
		if err != nil {
			view.BackfillErrors = append(view.BackfillErrors, err.Error())
			continue
		}
		for _, in := range ins {
			j, err := v.Store.CreateBackfillJob(ctx, in)
			if err != nil {
				return view, fmt.Errorf("create backfill of %s: %w", r.Table, err)
			}
			view.Backfills = append(view.Backfills, viewBackfill(j, time.Now()))
		}
	}
	return view, nil
}

// destName names a destination in results, also one that could not be
// opened.
type destName struct{ name, typ string }

// openDestination returns a reader of destination id with its stored
// credentials, and its name and type (also when it cannot be opened).
func (v Verifier) openDestination(ctx context.Context, id int64) (verify.Destination, func(), destName, error) {
	named := destName{name: fmt.Sprintf("destination %d", id)}
	d, err := v.Store.DestinationWithSecrets(ctx, id)
	if err != nil {
		return nil, nil, named, fmt.Errorf("read destination %d: %w", id, err)
	}
	named = destName{name: d.Name, typ: d.Type}
	raw, err := d.ConfigWithSecrets()
	if err != nil {
		return nil, nil, named, fmt.Errorf("read destination %q: %w", d.Name, err)
	}
	switch d.Type {
	case "postgres":
		cfg, err := postgres.ParseConfig(raw)
		if err != nil {
			return nil, nil, named, fmt.Errorf("destination %q: %w", d.Name, err)
		}
		cctx, cancel := context.WithTimeout(ctx, v.ConnectTimeout)
		defer cancel()
		conn, err := pgcatalog.Connect(cctx, pgcatalog.Endpoint{Host: cfg.Host, Port: cfg.Port, Database: cfg.Database,
			User: cfg.User, Password: cfg.Password, Security: cfg.Security()})
		if err != nil {
			var pr *pgcatalog.Problem
			if errors.As(err, &pr) {
				err = errors.New(pr.Msg)
			}
			return nil, nil, named, fmt.Errorf("connect to destination %q: %w", d.Name, err)
		}
		return &verify.Postgres{Label: d.Name, Conn: conn, Schema: cfg.Schema}, func() { _ = conn.Close(context.WithoutCancel(ctx)) }, named, nil
	case "duckdb":
		cfg, err := duckdb.ParseConfig(raw)
		if err != nil {
			return nil, nil, named, fmt.Errorf("destination %q: %w", d.Name, err)
		}
		q := v.Querier
		if q == nil {
			q = destquery.NewQuerier(nil, nil)
		}
		return &verify.DuckDB{Label: d.Name, Path: cfg.Path, Schema: cfg.Schema, Querier: q}, func() {}, named, nil
	}
	return nil, nil, named, fmt.Errorf("verify does not read %s destinations yet (destination %q)", d.Type, d.Name)
}

func (s *Server) verifyPipeline(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var req VerifyRequest
	if len(c.Body()) > 0 {
		if err := decodeBody(c, &req); err != nil {
			return err
		}
	}
	v := Verifier{Store: s.store, Querier: s.verifyQueries, ConnectTimeout: s.cfg.CheckTimeout}
	view, err := v.Verify(c.UserContext(), id, req, nil)
	if err != nil {
		return err
	}
	return c.JSON(view)
}
