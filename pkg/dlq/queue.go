package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// addScript adds an entry unless one with the same msg_id exists, and
// records the table in the destination's table set, atomically.
//
// KEYS: stream, ids hash, tables set. ARGV: msg_id, table, field, value, …
// Returns {entry id, 1 when added / 0 when it already existed}.
var addScript = redis.NewScript(`
local id = redis.call('HGET', KEYS[2], ARGV[1])
if id and #redis.call('XRANGE', KEYS[1], id, id) > 0 then
  return {id, 0}
end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
id = redis.call('XADD', KEYS[1], '*', unpack(fields))
redis.call('HSET', KEYS[2], ARGV[1], id)
redis.call('SADD', KEYS[3], ARGV[2])
return {id, 1}
`)

// discardScript deletes one table's stream (entries and consumer group) and
// its ids, atomically, returning how many entries it held.
//
// KEYS: stream, ids hash, tables set. ARGV: table.
var discardScript = redis.NewScript(`
local n = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return n
`)

// Add stores e as a new entry of its (source, table, destination) stream and
// returns its id. It returns nil only after Redis executed the write; with
// AOF fsync "always" the entry is then on disk. It is idempotent per
// e.MsgID: while an entry with that msg_id exists, Add returns its id and
// writes nothing (added is false). Attempts below 1 are stored as 1, zero
// failure times as now.
func (q *Queue) Add(ctx context.Context, e Entry) (id string, added bool, err error) {
	if e.MsgID == "" || e.Table == "" {
		return "", false, errors.New("dlq add: entry without msg_id or table")
	}
	now := time.Now().UTC()
	if e.Attempts < 1 {
		e.Attempts = 1
	}
	if e.FirstFailedAt.IsZero() {
		e.FirstFailedAt = now
	}
	if e.LastFailedAt.IsZero() {
		e.LastFailedAt = e.FirstFailedAt
	}
	e.Error = truncate(e.Error, q.cfg.MaxErrorLen)
	key := q.Key(e.SourceID, e.Table, e.DestinationID)
	args := append([]any{e.MsgID, e.Table}, e.fields()...)
	res, err := addScript.Run(ctx, q.rdb, []string{key, idsKey(key), q.tablesKey(e.SourceID, e.DestinationID)}, args...).Slice()
	if err != nil {
		return "", false, fmt.Errorf("dlq add to %s: %w", key, err)
	}
	if len(res) != 2 {
		return "", false, fmt.Errorf("dlq add to %s: unexpected reply %v", key, res)
	}
	id, _ = res[0].(string)
	return id, fmt.Sprint(res[1]) == "1", nil
}

// TableStats is the state of one table's queue for one destination.
type TableStats struct {
	Table string
	// Depth is the number of entries.
	Depth int64
	// OldestID is the id of the oldest entry, OldestAt when it was written.
	OldestID string
	OldestAt time.Time
}

// Tables lists the tables of a source that have a stream for a destination,
// sorted by name.
func (q *Queue) Tables(ctx context.Context, sourceID, destinationID int64) ([]string, error) {
	tables, err := q.rdb.SMembers(ctx, q.tablesKey(sourceID, destinationID)).Result()
	if err != nil {
		return nil, fmt.Errorf("dlq tables of source %d destination %d: %w", sourceID, destinationID, err)
	}
	slices.Sort(tables)
	return tables, nil
}

// Stats returns depth and oldest entry of every non-empty queue of a
// source's tables for a destination, sorted by table.
func (q *Queue) Stats(ctx context.Context, sourceID, destinationID int64) ([]TableStats, error) {
	tables, err := q.Tables(ctx, sourceID, destinationID)
	if err != nil || len(tables) == 0 {
		return []TableStats{}, err
	}
	pipe := q.rdb.Pipeline()
	lens := make([]*redis.IntCmd, len(tables))
	firsts := make([]*redis.XMessageSliceCmd, len(tables))
	for i, t := range tables {
		key := q.Key(sourceID, t, destinationID)
		lens[i] = pipe.XLen(ctx, key)
		firsts[i] = pipe.XRangeN(ctx, key, "-", "+", 1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("dlq stats of source %d destination %d: %w", sourceID, destinationID, err)
	}
	out := []TableStats{}
	for i, t := range tables {
		n := lens[i].Val()
		if n == 0 {
			continue
		}
		st := TableStats{Table: t, Depth: n}
		if first := firsts[i].Val(); len(first) > 0 {
			st.OldestID = first[0].ID
			st.OldestAt = IDTime(first[0].ID)
		}
		out = append(out, st)
	}
	return out, nil
}

// ListOptions selects a page of entries.
type ListOptions struct {
	SourceID      int64
	DestinationID int64
	// Table lists one table (schema.table); empty lists every table, in
	// name order.
	Table string
	// After is the Next cursor of the previous page; empty starts at the
	// first entry.
	After string
	// Limit is the page size (50 when not positive).
	Limit int
}

// Page is one page of entries, oldest first within a table.
type Page struct {
	Entries []Entry
	// Total is the number of entries of the listed tables.
	Total int64
	// Next is the cursor of the following page, empty on the last one.
	Next string
}

// ParseCursor splits a Page.Next cursor into table and entry id.
func ParseCursor(cursor string) (table, id string, err error) {
	i := strings.LastIndex(cursor, "/")
	if i <= 0 || i == len(cursor)-1 || IDTime(cursor[i+1:]).IsZero() {
		return "", "", fmt.Errorf("cursor %q is not one returned by a previous page", cursor)
	}
	return cursor[:i], cursor[i+1:], nil
}

// List returns a page of entries. Entries that do not parse are returned
// with what could be read and the parse problem appended to Error.
func (q *Queue) List(ctx context.Context, o ListOptions) (Page, error) {
	if o.Limit <= 0 {
		o.Limit = 50
	}
	var tables []string
	if o.Table != "" {
		tables = []string{o.Table}
	} else {
		var err error
		if tables, err = q.Tables(ctx, o.SourceID, o.DestinationID); err != nil {
			return Page{}, err
		}
	}
	afterTable, afterID := "", ""
	if o.After != "" {
		var err error
		if afterTable, afterID, err = ParseCursor(o.After); err != nil {
			return Page{}, err
		}
	}
	page := Page{Entries: []Entry{}}
	if len(tables) == 0 {
		return page, nil
	}
	pipe := q.rdb.Pipeline()
	lens := make([]*redis.IntCmd, len(tables))
	for i, t := range tables {
		lens[i] = pipe.XLen(ctx, q.Key(o.SourceID, t, o.DestinationID))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return Page{}, fmt.Errorf("dlq list of source %d destination %d: %w", o.SourceID, o.DestinationID, err)
	}
	for _, l := range lens {
		page.Total += l.Val()
	}
	// One entry more than the page tells whether there is a next page.
	want := o.Limit + 1
	var tableOf []string
	for _, t := range tables {
		start := "-"
		switch {
		case afterTable == "":
		case t < afterTable:
			continue
		case t == afterTable:
			start = "(" + afterID
		}
		key := q.Key(o.SourceID, t, o.DestinationID)
		msgs, err := q.rdb.XRangeN(ctx, key, start, "+", int64(want-len(page.Entries))).Result()
		if err != nil {
			return Page{}, fmt.Errorf("dlq list %s: %w", key, err)
		}
		for _, m := range msgs {
			e, perr := parseEntry(m)
			if perr != nil {
				e.Error = strings.TrimSpace(e.Error + " (unreadable entry: " + perr.Error() + ")")
			}
			if e.Table == "" {
				e.Table = t
			}
			page.Entries = append(page.Entries, e)
			tableOf = append(tableOf, t)
		}
		if len(page.Entries) >= want {
			break
		}
	}
	if len(page.Entries) > o.Limit {
		page.Entries = page.Entries[:o.Limit]
		last := o.Limit - 1
		page.Next = tableOf[last] + "/" + page.Entries[last].ID
	}
	return page, nil
}

// Discard deletes every entry of one table's queue for a destination (every
// table's when table is empty) and returns how many it deleted. A replay
// running meanwhile finds its entries gone and skips them.
func (q *Queue) Discard(ctx context.Context, sourceID, destinationID int64, table string) (int64, error) {
	tables := []string{table}
	if table == "" {
		var err error
		if tables, err = q.Tables(ctx, sourceID, destinationID); err != nil {
			return 0, err
		}
	}
	var total int64
	for _, t := range tables {
		key := q.Key(sourceID, t, destinationID)
		n, err := discardScript.Run(ctx, q.rdb, []string{key, idsKey(key), q.tablesKey(sourceID, destinationID)}, t).Int64()
		if err != nil {
			return total, fmt.Errorf("dlq discard %s: %w", key, err)
		}
		total += n
	}
	return total, nil
}
