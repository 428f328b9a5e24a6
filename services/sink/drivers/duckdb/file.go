package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// open returns the open connection, opening the file if needed. Another
// process holding the file (a reader) makes opening retry for up to
// LockTimeout.
func (d *Driver) open(ctx context.Context) (*sql.Conn, error) {
	if d.conn != nil {
		return d.conn, nil
	}
	if wait := time.Until(d.noReopenUntil); wait > 0 {
		// Readers were promised this window after a MaxHold release.
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("wait for readers of duckdb file %s: %w", d.cfg.Path, err)
		}
	}
	if dir := filepath.Dir(d.cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create directory of duckdb file: %w", err)
		}
	}
	deadline := time.Now().Add(d.cfg.LockTimeout)
	backoff := 20 * time.Millisecond
	var connector *duckdb.Connector
	for {
		var err error
		connector, err = duckdb.NewConnector(d.cfg.Path, nil)
		if err == nil {
			break
		}
		// Another process holding the file is an IO error ("Could not
		// set lock on file … Conflicting lock is held in … (PID n)").
		var de *duckdb.Error
		if !errors.As(err, &de) || de.Type != duckdb.ErrorTypeIO || !time.Now().Add(backoff).Before(deadline) {
			return nil, fmt.Errorf("open duckdb file %s: %w", d.cfg.Path, err)
		}
		d.log.Debug("duckdb file is held by another process; retrying", "error", err, "retry_in", backoff)
		if err := sleep(ctx, backoff); err != nil {
			return nil, fmt.Errorf("open duckdb file %s: %w", d.cfg.Path, err)
		}
		backoff = min(2*backoff, time.Second)
	}
	db := sql.OpenDB(connector) // db.Close closes the connector
	conn, err := db.Conn(ctx)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to duckdb file %s: %w", d.cfg.Path, err)
	}
	d.db, d.conn, d.openedAt = db, conn, time.Now()
	d.tables = map[string]*tableShape{}
	d.stages = map[string]*stagePlan{}
	return conn, nil
}

// afterCommit decides, after a committed batch, when the file is released.
func (d *Driver) afterCommit() {
	now := time.Now()
	switch {
	case d.cfg.ReleaseAfter == 0:
	case d.cfg.MaxHold > 0 && now.Sub(d.openedAt) >= d.cfg.MaxHold:
		d.noReopenUntil = now.Add(d.cfg.ReaderWindow)
	default:
		gen := d.idleGen
		d.idle = time.AfterFunc(d.cfg.ReleaseAfter, func() { d.releaseIdle(gen) })
		return
	}
	// The batch is committed; a failed release (the checkpoint) does not
	// undo it, and DuckDB replays its WAL on the next open.
	if err := d.release(); err != nil {
		d.log.Warn("release duckdb file", "error", err)
	}
}

// releaseIdle is the idle timer's callback.
func (d *Driver) releaseIdle(gen uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if gen != d.idleGen || d.conn == nil {
		return // an Apply or Close came first
	}
	d.idle = nil
	if err := d.release(); err != nil {
		d.log.Warn("release idle duckdb file", "error", err)
	}
}

func (d *Driver) stopIdle() {
	d.idleGen++
	if d.idle != nil {
		d.idle.Stop()
		d.idle = nil
	}
}

// release checkpoints the file (so that a read-only process sees every
// committed batch without a WAL to replay) and closes it.
func (d *Driver) release() error {
	d.tables, d.stages = nil, nil
	if d.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if _, err := d.conn.ExecContext(ctx, "CHECKPOINT"); err != nil {
		errs = append(errs, fmt.Errorf("checkpoint: %w", err))
	}
	if err := d.conn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close connection: %w", err))
	}
	if err := d.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close database: %w", err))
	}
	d.conn, d.db = nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release duckdb file %s: %w", d.cfg.Path, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
