// Package duckdb is the sink driver that applies changes to a DuckDB
// database file: one DuckDB transaction per fetched batch, staged through
// DuckDB's appender into a temporary table and applied with a handful of
// set-based, version-guarded statements per table — the same contract and
// the same guards as the postgres driver (see pkg/sinkrunner.Driver).
//
// Destination layout:
//   - each source table becomes <schema>.<table> in the file (schema "main"
//     by default), created on first use from the batch's columns with the
//     source's key as primary key and two version columns, _rosetta_lsn and
//     _rosetta_seq (commit LSN and position in the transaction of the last
//     change applied to the row);
//   - schema _rosetta holds the bookkeeping that makes redelivery safe:
//     _rosetta.tables (one row per destination table: its truncate watermark
//     and the name of its tombstone table) and one tombstone table per
//     destination table (key and version of deleted rows).
//
// DuckDB lets one process write a file and, while it does, no other process
// may open it, not even read-only. The driver therefore holds the file only
// while it is busy: it opens it for a batch, and checkpoints and closes it
// after Config.ReleaseAfter without batches, or after the batch that ends
// Config.MaxHold of continuous use (then it leaves the file alone for
// Config.ReaderWindow). docs/duckdb.md tells readers how to read meanwhile.
package duckdb

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/rosettacdc/rosetta/pkg/colmark"
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// Type describes the duckdb destination type: the config fields the API
// accepts, with DefaultConfig's values as their defaults (the durations'
// are stated in their docs: the API stores only what was sent), and the
// driver's factory. It has no Check: the file is on the sink's host, which
// need not be the API's.
func Type() desttype.Type {
	d := DefaultConfig()
	return desttype.Type{
		Name: "duckdb",
		Fields: []desttype.Field{
			{Name: "path", Required: true, Doc: "Database file on the sink's host."},
			{Name: "schema", Default: d.Schema},
			// How the driver shares the file with readers (docs/duckdb.md).
			{Name: "release_after", Kind: desttype.Duration, Doc: "Close the file after this long without a batch so readers can open it (default " + desttype.Seconds(d.ReleaseAfter) + ")."},
			{Name: "max_hold", Kind: desttype.Duration, Doc: "Longest time the file stays open while batches keep arriving (default " + desttype.Seconds(d.MaxHold) + ")."},
			{Name: "reader_window", Kind: desttype.Duration, Doc: "Pause after a max_hold release before reopening (default " + desttype.Seconds(d.ReaderWindow) + ")."},
			{Name: "lock_timeout", Kind: desttype.Duration, Doc: "How long opening the file retries while a reader holds it (default " + desttype.Seconds(d.LockTimeout) + ")."},
			desttype.DroppedColumns(d.DroppedColumns),
		},
		Open: Factory,
	}
}

// Config is a duckdb destination's configuration, the JSON of
// configstore.Destination.ConfigWithSecrets:
//
//	{"path": "/var/lib/rosetta/analytics.duckdb", "schema": "main",
//	 "release_after": "1s", "max_hold": "30s", "reader_window": "1s",
//	 "lock_timeout": "30s"}
//
// Durations are Go duration strings ("500ms", "2m").
type Config struct {
	// Path is the database file; its directory is created if missing.
	Path string `json:"path"`
	// Schema receives the destination tables ("main").
	Schema string `json:"schema"`
	// ReleaseAfter is how long the file stays open without a batch before
	// the driver checkpoints and closes it so that other processes can
	// open it (1s). 0 closes it after every batch.
	ReleaseAfter time.Duration `json:"release_after"`
	// MaxHold bounds how long the file stays open while batches keep
	// arriving (30s): the batch that ends it is followed by a release and
	// ReaderWindow without the driver. 0 means no bound: a steady stream
	// keeps readers out until it pauses for ReleaseAfter.
	MaxHold time.Duration `json:"max_hold"`
	// ReaderWindow is how long the driver waits before reopening the file
	// after a MaxHold release, so that a reader retrying on the lock gets
	// in (1s).
	ReaderWindow time.Duration `json:"reader_window"`
	// LockTimeout is how long opening the file retries while another
	// process holds it before Apply fails with a transient error (30s).
	LockTimeout time.Duration `json:"lock_timeout"`
	// DroppedColumns is what happens to a destination column whose source
	// column was dropped: DroppedKeep (default) keeps it and writes NULL
	// to it in every row written from then on; DroppedDrop drops it.
	DroppedColumns string `json:"dropped_columns"`
}

// The values of Config.DroppedColumns.
const (
	DroppedKeep = colmark.DroppedKeep
	DroppedDrop = colmark.DroppedDrop
)

// DefaultConfig holds the defaults applied to empty fields.
func DefaultConfig() Config {
	return Config{
		Schema:       "main",
		ReleaseAfter: time.Second,
		MaxHold:      30 * time.Second,
		ReaderWindow: time.Second,
		LockTimeout:  30 * time.Second,
		// Losing a column's history surprises warehouse users more than
		// a column of NULLs.
		DroppedColumns: DroppedKeep,
	}
}

// ParseConfig decodes a destination's JSON config over DefaultConfig and
// validates it. Unknown fields are ignored.
func ParseConfig(raw json.RawMessage) (Config, error) {
	var wire struct {
		Path         string  `json:"path"`
		Schema       string  `json:"schema"`
		ReleaseAfter *string `json:"release_after"`
		MaxHold      *string `json:"max_hold"`
		ReaderWindow *string `json:"reader_window"`
		LockTimeout  *string `json:"lock_timeout"`
		Dropped      string  `json:"dropped_columns"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		return Config{}, fmt.Errorf("decode duckdb destination config: %w", err)
	}
	c := DefaultConfig()
	c.Path = wire.Path
	if wire.Schema != "" {
		c.Schema = wire.Schema
	}
	if wire.Dropped != "" {
		c.DroppedColumns = wire.Dropped
	}
	var errs []error
	for _, d := range []struct {
		name string
		in   *string
		out  *time.Duration
	}{
		{"release_after", wire.ReleaseAfter, &c.ReleaseAfter},
		{"max_hold", wire.MaxHold, &c.MaxHold},
		{"reader_window", wire.ReaderWindow, &c.ReaderWindow},
		{"lock_timeout", wire.LockTimeout, &c.LockTimeout},
	} {
		if d.in == nil || *d.in == "" {
			continue
		}
		v, err := time.ParseDuration(*d.in)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %.40q is not a duration like \"1s\" or \"500ms\"", d.name, *d.in))
			continue
		}
		*d.out = v
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("duckdb destination config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate reports every missing or invalid field.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Path == "":
		errs = append(errs, errors.New("path is empty"))
	case c.Path == ":memory:" || strings.HasPrefix(c.Path, ":memory:"):
		errs = append(errs, errors.New("path must name a file, not an in-memory database"))
	case strings.ContainsAny(c.Path, "?#\x00"):
		// The DuckDB driver reads everything after '?' as options.
		errs = append(errs, fmt.Errorf("path %q may not contain '?', '#' or NUL", c.Path))
	default:
		if _, err := url.Parse(c.Path); err != nil {
			errs = append(errs, fmt.Errorf("path %q is not usable by the DuckDB driver: %w", c.Path, err))
		}
	}
	if c.Schema == "" {
		errs = append(errs, errors.New("schema is empty"))
	} else if c.Schema == relational.BookkeepingSchema || strings.HasPrefix(c.Schema, relational.ReservedPrefix) {
		errs = append(errs, fmt.Errorf("schema %q is reserved for Rosetta's bookkeeping", c.Schema))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"release_after", c.ReleaseAfter}, {"max_hold", c.MaxHold}, {"reader_window", c.ReaderWindow}, {"lock_timeout", c.LockTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative", d.name, d.v))
		}
	}
	if err := colmark.CheckDroppedPolicy(c.DroppedColumns); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("duckdb destination config: %w", err)
	}
	return nil
}

// LogValue groups the config for logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("path", c.Path), slog.String("schema", c.Schema),
		slog.Duration("release_after", c.ReleaseAfter), slog.Duration("max_hold", c.MaxHold),
		slog.Duration("reader_window", c.ReaderWindow), slog.Duration("lock_timeout", c.LockTimeout),
		slog.String("dropped_columns", c.DroppedColumns),
	)
}
