// Package dlq keeps the changes a destination rejected for good in Redis
// Streams, one stream per (source, table, destination), and replays them
// through a destination when asked.
//
// Layout (prefix "dlq" by default; table is schema.table as the source names
// it; ids are decimal):
//
//	<prefix>:<source_id>:<table>:<destination_id>         stream of entries
//	<prefix>:<source_id>:<table>:<destination_id>:ids     hash msg_id -> entry id (deduplication)
//	<prefix>:tables:<source_id>:<destination_id>          set of tables with a stream
//
// The keys of one destination's queue are read and written together in Lua
// scripts, so a single Redis server (or a primary with replicas / Sentinel)
// is required; Redis Cluster is not supported.
//
// Contracts:
//   - Add returns nil only once Redis has executed the write (with AOF and
//     appendfsync always it is on disk; see deploy/README.md). The sink acks
//     the JetStream message only after that.
//   - Add is idempotent per msg_id: adding the change again while its entry
//     exists returns that entry. A redelivered message, or a retry after a
//     lost reply, never makes a second entry.
//   - Replay removes an entry (XACK + XDEL) only after the apply function
//     returned nil for it, i.e. after the destination committed it. An entry
//     that fails again is replaced, atomically, by a copy with its attempt
//     count raised and its last error. Entries a replay worker read but did
//     not finish stay pending in the consumer group and the next replay
//     reclaims them (XAUTOCLAIM). Applying an entry twice is harmless: the
//     destination drivers are version-guarded.
//   - Entries leave by Replay (after success), Discard, or Trim (the
//     retention: maximum age and count per stream, trim.go); Trim forgets
//     their msg_ids too. Nothing else removes them.
package dlq

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config configures a Queue.
type Config struct {
	// Prefix starts every key ("dlq").
	Prefix string
	// Group is the consumer group replays read through ("rosetta-replay").
	Group string
	// ReadCount is how many entries one read or reclaim takes (100).
	ReadCount int
	// ApplyBatch is how many entries are applied together (100); a batch
	// that fails is bisected by the apply function.
	ApplyBatch int
	// ReclaimMinIdle is how long an entry must have been pending before a
	// replay reclaims it from another consumer (0). Zero is safe because
	// the sink runs one replay per destination at a time (a lease in the
	// config database): pending entries belong to a worker that stopped.
	// Even a worker that is still alive past its lease only causes a second,
	// harmless apply of the same entries.
	ReclaimMinIdle time.Duration
	// MaxErrorLen bounds the error text stored with an entry (4000 bytes).
	MaxErrorLen int
}

// DefaultConfig holds the defaults.
func DefaultConfig() Config {
	return Config{Prefix: "dlq", Group: "rosetta-replay", ReadCount: 100, ApplyBatch: 100, MaxErrorLen: 4000}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Prefix == "" {
		c.Prefix = d.Prefix
	}
	if c.Group == "" {
		c.Group = d.Group
	}
	if c.ReadCount <= 0 {
		c.ReadCount = d.ReadCount
	}
	if c.ApplyBatch <= 0 {
		c.ApplyBatch = d.ApplyBatch
	}
	if c.MaxErrorLen <= 0 {
		c.MaxErrorLen = d.MaxErrorLen
	}
	return c
}

// Validate checks the config (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if strings.ContainsAny(c.Prefix, " \t\r\n{}") {
		errs = append(errs, fmt.Errorf("dlq: prefix %q must not contain spaces or braces", c.Prefix))
	}
	if c.ReclaimMinIdle < 0 {
		errs = append(errs, errors.New("dlq: reclaim min idle must not be negative"))
	}
	return errors.Join(errs...)
}

// Queue is the dead-letter queues of every destination in one Redis. It is
// safe for concurrent use.
type Queue struct {
	rdb redis.UniversalClient
	cfg Config
}

// New returns a queue on rdb. It does not connect.
func New(rdb redis.UniversalClient, cfg Config) (*Queue, error) {
	if rdb == nil {
		return nil, errors.New("dlq: no redis client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Queue{rdb: rdb, cfg: cfg.withDefaults()}, nil
}

// Key is the stream of one source table's entries for one destination:
// <prefix>:<source_id>:<schema.table>:<destination_id>.
func (q *Queue) Key(sourceID int64, table string, destinationID int64) string {
	return q.cfg.Prefix + ":" + strconv.FormatInt(sourceID, 10) + ":" + table + ":" + strconv.FormatInt(destinationID, 10)
}

// idsKey maps the msg_id of every entry of stream key to its entry id. No
// stream key can equal it: a stream key ends with a numeric destination id.
func idsKey(stream string) string { return stream + ":ids" }

// tablesKey is the set of tables of one source with a stream for one
// destination. No stream key can equal it: "tables" is not a source id.
func (q *Queue) tablesKey(sourceID, destinationID int64) string {
	return q.cfg.Prefix + ":tables:" + strconv.FormatInt(sourceID, 10) + ":" + strconv.FormatInt(destinationID, 10)
}

// EntryVersion is the format version of entries, in field "v".
const EntryVersion = 1

// Entry is one dead-lettered change.
type Entry struct {
	// ID is the stream entry id; Redis assigns it (Add ignores it).
	ID            string
	SourceID      int64
	DestinationID int64
	// PipelineID is the pipeline whose sink dead-lettered the change.
	PipelineID int64
	// Table is the source table, schema.table.
	Table string
	// MsgID identifies the change (contracts.MsgID); Add deduplicates on it.
	MsgID string
	// Change is the message body as the sink consumed it: the change
	// envelope (contracts.Change JSON), or whatever an undecodable message
	// held.
	Change []byte
	// ErrorClass and Error say why the destination rejected it last.
	ErrorClass string
	Error      string
	// Attempts counts the failed applies: 1 when dead-lettered, one more
	// for every replay that failed.
	Attempts      int
	FirstFailedAt time.Time
	LastFailedAt  time.Time
	// Stream, StreamSeq and Subject are the JetStream position the change
	// was consumed from.
	Stream    string
	StreamSeq uint64
	Subject   string
}

// Entry field names in Redis.
const (
	fVersion       = "v"
	fSourceID      = "source_id"
	fDestinationID = "destination_id"
	fPipelineID    = "pipeline_id"
	fTable         = "table"
	fMsgID         = "msg_id"
	fChange        = "change"
	fErrorClass    = "error_class"
	fError         = "error"
	fAttempts      = "attempts"
	fFirstFailedAt = "first_failed_at"
	fLastFailedAt  = "last_failed_at"
	fStream        = "js_stream"
	fStreamSeq     = "js_seq"
	fSubject       = "js_subject"
)

// fields encodes e as stream field/value pairs, in a fixed order.
func (e Entry) fields() []any {
	return []any{
		fVersion, strconv.Itoa(EntryVersion),
		fSourceID, strconv.FormatInt(e.SourceID, 10),
		fDestinationID, strconv.FormatInt(e.DestinationID, 10),
		fPipelineID, strconv.FormatInt(e.PipelineID, 10),
		fTable, e.Table,
		fMsgID, e.MsgID,
		fChange, string(e.Change),
		fErrorClass, e.ErrorClass,
		fError, e.Error,
		fAttempts, strconv.Itoa(e.Attempts),
		fFirstFailedAt, formatTime(e.FirstFailedAt),
		fLastFailedAt, formatTime(e.LastFailedAt),
		fStream, e.Stream,
		fStreamSeq, strconv.FormatUint(e.StreamSeq, 10),
		fSubject, e.Subject,
	}
}

// parseEntry decodes a stream entry. Unknown fields are ignored, so that a
// newer writer's entries stay readable.
func parseEntry(m redis.XMessage) (Entry, error) {
	e := Entry{ID: m.ID}
	str := func(k string) string {
		v, _ := m.Values[k].(string)
		return v
	}
	if v := str(fVersion); v != strconv.Itoa(EntryVersion) {
		return e, fmt.Errorf("dlq entry %s: format version %q, want %d", m.ID, v, EntryVersion)
	}
	var errs []error
	num := func(k string) int64 {
		n, err := strconv.ParseInt(str(k), 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", k, err))
		}
		return n
	}
	when := func(k string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, str(k))
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", k, err))
		}
		return t
	}
	e.SourceID = num(fSourceID)
	e.DestinationID = num(fDestinationID)
	e.PipelineID = num(fPipelineID)
	e.Table = str(fTable)
	e.MsgID = str(fMsgID)
	e.Change = []byte(str(fChange))
	e.ErrorClass = str(fErrorClass)
	e.Error = str(fError)
	e.Attempts = int(num(fAttempts))
	e.FirstFailedAt = when(fFirstFailedAt)
	e.LastFailedAt = when(fLastFailedAt)
	e.Stream = str(fStream)
	e.StreamSeq = uint64(num(fStreamSeq))
	e.Subject = str(fSubject)
	if err := errors.Join(errs...); err != nil {
		return e, fmt.Errorf("dlq entry %s: %w", m.ID, err)
	}
	return e, nil
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// IDTime is when an entry id was assigned (its millisecond part); zero for
// an id that is not a stream id.
func IDTime(id string) time.Time {
	ms, _, ok := strings.Cut(id, "-")
	if !ok {
		return time.Time{}
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
