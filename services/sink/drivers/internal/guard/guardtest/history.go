// Package guardtest generates random change histories for the version
// guard's property tests: the source's true final state, and the same
// changes delivered shuffled, duplicated and split into random batches.
// Test-only: imported by the drivers' tests and guard's own.
package guardtest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
)

// Columns of every generated table: id is the key, n is sent by every
// change, body and blob are the TOASTed columns updates may leave
// unchanged.
var Columns = []contracts.Column{
	{Name: "id", Type: "bigint", BaseType: "bigint", Key: true},
	{Name: "n", Type: "bigint", BaseType: "bigint"},
	{Name: "body", Type: "text", BaseType: "text"},
	{Name: "blob", Type: "text", BaseType: "text"},
}

// ValueColumns are the non-key columns.
var ValueColumns = []string{"n", "body", "blob"}

// Row is one row at the source.
type Row map[string]string // non-key column -> text; absent = NULL

// Scenario is the changes of some tables and their true final state.
type Scenario struct {
	Schema string
	Tables []string
	// Changes in version (commit) order.
	Changes []contracts.Change
	// Truth is each table's rows at the source after every change, by key
	// text.
	Truth map[string]map[string]Row
	// Pair maps a key to its history: keys 2h and 2h+1 make history h,
	// whose changes may move the row between them.
	histories int
}

// Histories is the number of key histories generated.
func (s *Scenario) Histories() int { return s.histories }

// PairOf returns the history a key belongs to.
func PairOf(key string) int {
	n, _ := strconv.Atoi(key)
	return n / 2
}

// Generate builds tables × historiesPerTable histories of about
// opsPerHistory changes each, interleaved, with a truncate of a table now
// and then.
func Generate(rng *rand.Rand, schema string, tables, historiesPerTable, opsPerHistory int) *Scenario {
	return generate(rng, schema, tables, historiesPerTable, opsPerHistory, true)
}

// GenerateWithoutMoves is Generate without key changes: histories whose
// every delivery order must end in the source's state.
func GenerateWithoutMoves(rng *rand.Rand, schema string, tables, historiesPerTable, opsPerHistory int) *Scenario {
	return generate(rng, schema, tables, historiesPerTable, opsPerHistory, false)
}

func generate(rng *rand.Rand, schema string, tables, historiesPerTable, opsPerHistory int, moves bool) *Scenario {
	s := &Scenario{Schema: schema, Truth: map[string]map[string]Row{}}
	lsn := uint64(0x1000)
	for ti := 0; ti < tables; ti++ {
		table := fmt.Sprintf("g%d", ti)
		s.Tables = append(s.Tables, table)
		rows := map[string]Row{}
		s.Truth[table] = rows
		steps := historiesPerTable * opsPerHistory
		for step := 0; step < steps; step++ {
			lsn += 0x10
			src := contracts.Source{SourceID: 1, Schema: schema, Table: table, CommitLSN: fmt.Sprintf("0/%X", lsn), Seq: 1}
			if rng.IntN(steps/2+1) == 0 {
				s.Changes = append(s.Changes, contracts.Change{V: contracts.EnvelopeVersion, Op: contracts.OpTruncate, Source: src})
				clear(rows)
				continue
			}
			h := rng.IntN(historiesPerTable)
			k0, k1 := strconv.Itoa(2*h), strconv.Itoa(2*h+1)
			live, other := k0, k1
			if _, ok := rows[k0]; !ok {
				live, other = k1, k0
			}
			if _, ok := rows[live]; !ok {
				// Neither key exists: insert one.
				k := k0
				if rng.IntN(2) == 0 {
					k = k1
				}
				r := Row{"n": strconv.Itoa(rng.IntN(1000)), "body": "b" + src.CommitLSN, "blob": "x" + src.CommitLSN}
				if rng.IntN(8) == 0 {
					delete(r, "blob") // NULL
				}
				rows[k] = r
				s.Changes = append(s.Changes, rowChange(contracts.OpCreate, src, k, "", r, nil))
				continue
			}
			_, otherLive := rows[other]
			cur := rows[live]
			switch p := rng.IntN(20); {
			case p < 10: // update, leaving TOASTed columns unchanged at random
				next := Row{"n": strconv.Itoa(rng.IntN(1000))}
				var unch []string
				for _, c := range []string{"body", "blob"} {
					if rng.IntN(2) == 0 {
						unch = append(unch, c)
						if v, ok := cur[c]; ok {
							next[c] = v
						}
						continue
					}
					if rng.IntN(6) > 0 {
						next[c] = c[:1] + src.CommitLSN
					}
				}
				rows[live] = next
				s.Changes = append(s.Changes, rowChange(contracts.OpUpdate, src, live, "", next, unch))
			case p < 14: // delete
				delete(rows, live)
				s.Changes = append(s.Changes, contracts.Change{V: contracts.EnvelopeVersion, Op: contracts.OpDelete, Source: src,
					Columns: Columns, Key: contracts.Row{"id": json.RawMessage(live)}})
			case p < 16 && !otherLive && moves: // move the row to the other key
				next := Row{"n": strconv.Itoa(rng.IntN(1000))}
				var unch []string
				for _, c := range []string{"body", "blob"} {
					if rng.IntN(3) > 0 {
						unch = append(unch, c)
						if v, ok := cur[c]; ok {
							next[c] = v
						}
						continue
					}
					next[c] = c[:1] + src.CommitLSN
				}
				delete(rows, live)
				rows[other] = next
				s.Changes = append(s.Changes, rowChange(contracts.OpUpdate, src, other, live, next, unch))
			default: // full update
				next := Row{"n": strconv.Itoa(rng.IntN(1000)), "body": "B" + src.CommitLSN, "blob": "X" + src.CommitLSN}
				rows[live] = next
				s.Changes = append(s.Changes, rowChange(contracts.OpUpdate, src, live, "", next, nil))
			}
		}
		s.histories += historiesPerTable
	}
	// Interleave the tables' changes in one version order: each table's
	// LSNs were drawn from one counter, so sorting by version does it.
	return s
}

func rowChange(op contracts.Op, src contracts.Source, key, oldKey string, r Row, unchanged []string) contracts.Change {
	after := contracts.Row{"id": json.RawMessage(key)}
	for _, c := range ValueColumns {
		if contains(unchanged, c) {
			continue
		}
		v, ok := r[c]
		switch {
		case !ok:
			after[c] = json.RawMessage("null")
		case c == "n":
			after[c] = json.RawMessage(v)
		default:
			b, _ := json.Marshal(v)
			after[c] = b
		}
	}
	ch := contracts.Change{V: contracts.EnvelopeVersion, Op: op, Source: src, Columns: Columns,
		Key: contracts.Row{"id": json.RawMessage(key)}, After: after, Unchanged: unchanged}
	if oldKey != "" {
		ch.Before = contracts.Row{"id": json.RawMessage(oldKey)}
	}
	return ch
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Delivery is one way the changes arrive: batches in order.
type Delivery struct {
	Batches [][]contracts.Change
	// Stale holds the histories (PairOf) in which a move reached the sink
	// in an earlier batch than a change of its old key older than the
	// move: the moved row's unchanged columns were taken from a stale
	// old row, which the guard cannot notice (docs/delivery.md). Until
	// the reported rows are re-read (Scenario.Completion) the destination
	// must equal the specification there, not the source.
	Stale map[string]map[int]bool
}

// InOrder delivers the changes once each, in order, in batches of
// 1..maxBatch changes.
func InOrder(rng *rand.Rand, changes []contracts.Change, maxBatch int) Delivery {
	var d Delivery
	for len(changes) > 0 {
		n := min(1+rng.IntN(maxBatch), len(changes))
		d.Batches = append(d.Batches, changes[:n])
		changes = changes[n:]
	}
	return d
}

// Shuffle delivers every change once or more (dupRate of them twice), in
// random order, in batches of 1..maxBatch changes.
func Shuffle(rng *rand.Rand, changes []contracts.Change, dupRate float64, maxBatch int) Delivery {
	idx := make([]int, 0, len(changes)*2)
	for i := range changes {
		idx = append(idx, i)
		if rng.Float64() < dupRate {
			idx = append(idx, i)
		}
	}
	rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
	d := Delivery{Stale: map[string]map[int]bool{}}
	batchOf := make([]int, len(changes)) // first batch each change arrived in
	for i := range batchOf {
		batchOf[i] = -1
	}
	for len(idx) > 0 {
		n := 1 + rng.IntN(maxBatch)
		n = min(n, len(idx))
		var batch []contracts.Change
		for _, i := range idx[:n] {
			batch = append(batch, changes[i])
			if batchOf[i] < 0 {
				batchOf[i] = len(d.Batches)
			}
		}
		d.Batches = append(d.Batches, batch)
		idx = idx[n:]
	}
	// A move is exact when, for each column it left unchanged, the newest
	// older change of its old key that provided the column arrived no
	// later than the move's batch.
	for i, m := range changes {
		if m.Op != contracts.OpUpdate || m.Before == nil {
			continue
		}
		if d.staleMove(changes, batchOf, i) {
			if d.Stale[m.Source.Table] == nil {
				d.Stale[m.Source.Table] = map[int]bool{}
			}
			d.Stale[m.Source.Table][PairOf(string(m.Key["id"]))] = true
		}
	}
	return d
}

func (d *Delivery) staleMove(changes []contracts.Change, batchOf []int, i int) bool {
	m := changes[i]
	old := string(m.Before["id"])
	need := map[string]bool{}
	for _, c := range m.Unchanged {
		need[c] = true
	}
	for j := i - 1; j >= 0 && len(need) > 0; j-- {
		c := changes[j]
		if c.Source.Table != m.Source.Table {
			continue
		}
		if c.Op == contracts.OpTruncate {
			return false
		}
		if c.Before != nil && string(c.Before["id"]) == old {
			return false // moved away from the old key: it did not exist
		}
		if string(c.Key["id"]) != old {
			continue
		}
		if c.Op == contracts.OpDelete {
			return false
		}
		for col := range need {
			if contains(c.Unchanged, col) && c.Before == nil {
				continue // an older change of the key provides it
			}
			delete(need, col)
			if batchOf[j] > batchOf[i] {
				return true
			}
		}
	}
	return false
}

// Spec applies a delivery to the specification, batch by batch, and
// returns each table's state.
func Spec(d Delivery, tables []string) (map[string]*guard.Table, error) {
	out, _, err := SpecReports(d, tables)
	return out, err
}

// Dest is a destination row as read back: non-key values by column, NULL
// absent.
type Dest map[string]map[string]Row // table -> key -> row

// FromSpec turns the specification's tables into Dest form.
func FromSpec(tables map[string]*guard.Table) Dest {
	out := Dest{}
	for name, t := range tables {
		rows := map[string]Row{}
		for _, r := range t.Rows {
			row := Row{}
			for c, v := range r.Values {
				if !v.Null {
					row[c] = v.Text
				}
			}
			rows[r.Key[0].Text] = row
		}
		out[name] = rows
	}
	return out
}

// Diff lists the differences between got and want for table, skipping
// the histories in skip; at most limit lines.
func Diff(table string, got, want map[string]Row, skip map[int]bool, limit int) []string {
	var out []string
	seen := map[string]bool{}
	check := func(k string) {
		if seen[k] || skip[PairOf(k)] || len(out) >= limit {
			return
		}
		seen[k] = true
		g, gok := got[k]
		w, wok := want[k]
		if gok != wok {
			out = append(out, fmt.Sprintf("%s key %s: exists %v, want %v (got %v, want %v)", table, k, gok, wok, g, w))
			return
		}
		for _, c := range ValueColumns {
			gv, gh := g[c]
			wv, wh := w[c]
			if gv != wv || gh != wh {
				out = append(out, fmt.Sprintf("%s key %s column %s: %q (set %v), want %q (set %v)", table, k, c, gv, gh, wv, wh))
			}
		}
	}
	for k := range want {
		check(k)
	}
	for k := range got {
		check(k)
	}
	return out
}
