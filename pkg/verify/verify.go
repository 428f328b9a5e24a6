package verify

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/snapshot"
)

// Defaults of Options.
const (
	DefaultChunkRows = 5000
	DefaultMaxKeys   = 10000
)

// Options tune a verification.
type Options struct {
	// ChunkRows is how many source rows one checksummed key range holds
	// (DefaultChunkRows).
	ChunkRows int
	// MaxKeys bounds the differing keys kept per table and destination
	// (DefaultMaxKeys); the counts stay exact.
	MaxKeys int
	// Progress, when set, is called after every key range.
	Progress func(Progress)
}

// Progress is how far the verification of one table at one destination is.
type Progress struct {
	Table       string
	Destination string
	RowsChecked int64
	RowsTotal   int64
}

// Status of a TableResult.
const (
	StatusEqual     = "equal"
	StatusDifferent = "different"
	StatusError     = "error"
)

// Diff says how a key differs.
type Diff string

const (
	Missing   Diff = "missing"   // at the source, not at the destination
	Extra     Diff = "extra"     // at the destination, not at the source
	Differing Diff = "differing" // at both, with different values
)

// KeyDiff is one differing key: its key column values as PostgreSQL's text
// output (for an extra row, as the destination spells them).
type KeyDiff struct {
	Key  []string `json:"key"`
	Diff Diff     `json:"diff"`
}

// TableResult is one table compared at one destination.
type TableResult struct {
	Table           string    `json:"table"`
	DestinationID   int64     `json:"destination_id"`
	Destination     string    `json:"destination"`
	DestinationType string    `json:"destination_type"`
	KeyColumns      []string  `json:"key_columns"`
	SourceRows      int64     `json:"source_rows"`
	DestinationRows int64     `json:"destination_rows"`
	Missing         int64     `json:"missing"`
	Extra           int64     `json:"extra"`
	Differing       int64     `json:"differing"`
	Status          string    `json:"status"`
	Error           string    `json:"error,omitempty"`
	Keys            []KeyDiff `json:"keys"`
	KeysTruncated   bool      `json:"keys_truncated"`
}

// Destination is where a table is read back. Implementations: Postgres,
// DuckDB.
type Destination interface {
	// Name and Type describe it in results.
	Name() string
	Type() string
	// Columns returns the destination table's columns, false if the
	// table does not exist.
	Columns(ctx context.Context, table string) (map[string]bool, bool, error)
	// Rows returns the rows of table whose key is in r, each as the key
	// columns' values then the value columns', projected for the kinds.
	Rows(ctx context.Context, table string, cols []Col, r Range) ([][]*string, error)
}

// Col is a compared column.
type Col struct {
	Name string
	Type string // source format_type text
	Key  bool
	kind kind
}

// Range is a key range (Lo, Hi]; nil bounds are open. Bounds are the key
// columns' PostgreSQL text output.
type Range struct {
	Lo, Hi []string
}

// plan is one table as compared: key columns first, then the others.
type plan struct {
	table string // schema.table at the source
	name  string // table name at the destinations
	cols  []Col
	nkey  int
}

func newPlan(t snapshot.Table) (plan, error) {
	if len(t.Key) == 0 {
		return plan{}, fmt.Errorf("%s.%s has no primary key: verify compares rows by key", t.Schema, t.Name)
	}
	p := plan{table: t.Schema + "." + t.Name, name: t.Name, nkey: len(t.Key)}
	isKey := map[int]bool{}
	for _, i := range t.Key {
		c := t.Columns[i]
		p.cols = append(p.cols, Col{Name: c.Name, Type: c.Type, Key: true, kind: kindOf(c.Type)})
		isKey[i] = true
	}
	for i, c := range t.Columns {
		if !isKey[i] {
			p.cols = append(p.cols, Col{Name: c.Name, Type: c.Type, kind: kindOf(c.Type)})
		}
	}
	return p, nil
}

func (p plan) keyNames() []string {
	out := make([]string, p.nkey)
	for i := range out {
		out[i] = p.cols[i].Name
	}
	return out
}

// row is a row read back: its raw key (text output, from the source), its
// canonical key and values.
type row struct {
	raw  []string
	key  string
	vals []*string
}

func (p plan) canonRow(raw []string, vals []*string) row {
	r := row{raw: raw, vals: make([]*string, len(vals))}
	var b strings.Builder
	for i, v := range vals {
		r.vals[i] = canon(p.cols[i].kind, v)
		if i < p.nkey {
			if i > 0 {
				b.WriteByte(0x1f)
			}
			if r.vals[i] != nil {
				b.WriteString(*r.vals[i])
			}
		}
	}
	r.key = b.String()
	return r
}

// hash is a row's 64-bit digest; a range's checksum is the sum of its
// rows' digests, so it does not depend on the order rows are read in
// (collations may order keys differently; a range's bounds do not).
func (r row) hash() uint64 {
	h := sha256.New()
	for _, v := range r.vals {
		if v == nil {
			h.Write([]byte{0})
			continue
		}
		h.Write([]byte{1})
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(*v)))
		h.Write(n[:])
		h.Write([]byte(*v))
	}
	return binary.LittleEndian.Uint64(h.Sum(nil))
}

// chunk is one key range of the source and its checksum.
type chunk struct {
	r     Range
	count int64
	sum   uint64
}

// pgQuerier runs queries in the source's snapshot transaction.
type pgQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Table compares one source table (read through tx, a REPEATABLE READ
// READ ONLY transaction) with each destination.
func Table(ctx context.Context, tx pgQuerier, t snapshot.Table, dests []Destination, ids []int64, opts Options) []TableResult {
	if opts.ChunkRows <= 0 {
		opts.ChunkRows = DefaultChunkRows
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	results := make([]TableResult, len(dests))
	for i, d := range dests {
		results[i] = TableResult{Table: t.Schema + "." + t.Name, DestinationID: ids[i], Destination: d.Name(),
			DestinationType: d.Type(), Keys: []KeyDiff{}}
	}
	fail := func(err error) []TableResult {
		for i := range results {
			results[i].Status, results[i].Error = StatusError, err.Error()
		}
		return results
	}
	p, err := newPlan(t)
	if err != nil {
		return fail(err)
	}
	for i := range results {
		results[i].KeyColumns = p.keyNames()
	}
	chunks, total, err := sourceChunks(ctx, tx, t, p, opts.ChunkRows)
	if err != nil {
		return fail(fmt.Errorf("read source table %s: %w", p.table, err))
	}
	for i, d := range dests {
		res := &results[i]
		res.SourceRows = total
		if err := compare(ctx, tx, t, p, d, chunks, total, res, opts); err != nil {
			res.Status, res.Error = StatusError, err.Error()
			continue
		}
		res.Status = StatusEqual
		if res.Missing+res.Extra+res.Differing > 0 {
			res.Status = StatusDifferent
		}
	}
	return results
}

// compare checks every source chunk against d, and narrows a chunk whose
// count or checksum differs to its keys.
func compare(ctx context.Context, tx pgQuerier, t snapshot.Table, p plan, d Destination, chunks []chunk, total int64, res *TableResult, opts Options) error {
	have, ok, err := d.Columns(ctx, p.name)
	if err != nil {
		return fmt.Errorf("read columns of %s at destination %s: %w", p.name, d.Name(), err)
	}
	if ok {
		for _, c := range p.cols {
			if !have[c.Name] {
				return fmt.Errorf("destination table %s has no column %s", p.name, c.Name)
			}
		}
	}
	var checked int64
	for _, c := range chunks {
		var got [][]*string
		if ok {
			got, err = d.Rows(ctx, p.name, p.cols, c.r)
			if err != nil {
				return fmt.Errorf("read %s at destination %s: %w", p.name, d.Name(), err)
			}
		}
		dst := make([]row, len(got))
		var sum uint64
		for i, g := range got {
			dst[i] = p.canonRow(nil, g)
			sum += dst[i].hash()
		}
		res.DestinationRows += int64(len(dst))
		if int64(len(dst)) != c.count || sum != c.sum {
			src, err := sourceRows(ctx, tx, t, p, c.r)
			if err != nil {
				return fmt.Errorf("read source table %s: %w", p.table, err)
			}
			narrow(src, dst, res, opts.MaxKeys)
		}
		checked += c.count
		if opts.Progress != nil {
			opts.Progress(Progress{Table: p.table, Destination: d.Name(), RowsChecked: checked, RowsTotal: total})
		}
	}
	return nil
}

// narrow compares a range's rows key by key.
func narrow(src, dst []row, res *TableResult, maxKeys int) {
	add := func(key []string, d Diff) {
		switch d {
		case Missing:
			res.Missing++
		case Extra:
			res.Extra++
		case Differing:
			res.Differing++
		}
		if len(res.Keys) < maxKeys {
			res.Keys = append(res.Keys, KeyDiff{Key: key, Diff: d})
		} else {
			res.KeysTruncated = true
		}
	}
	byKey := make(map[string]row, len(dst))
	for _, r := range dst {
		byKey[r.key] = r
	}
	for _, s := range src {
		d, ok := byKey[s.key]
		if !ok {
			add(s.raw, Missing)
			continue
		}
		delete(byKey, s.key)
		if s.hash() != d.hash() {
			add(s.raw, Differing)
		}
	}
	for _, d := range dst {
		if _, ok := byKey[d.key]; ok {
			key := strings.Split(d.key, "\x1f")
			add(key, Extra)
		}
	}
}
