package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// workload is one change mix: which operations, how many per transaction.
type workload struct {
	Name    string `json:"name"`
	Mix     string `json:"mix"`     // "insert" or "70/20/10"
	TxSize  int    `json:"tx_size"` // changes per source transaction
	Changes int    `json:"changes"` // changes in the backlog, sentinel included
	Full    bool   `json:"-"`       // run every ceiling and Rosetta run (else: recvlogical, decode loop, e2e into PostgreSQL)
	table   string
}

// op is one source change; a row's content is a function of (id, ver), so
// the ceilings can rebuild every row without keeping it.
type op struct {
	kind byte // 'c', 'u', 'd'
	id   int64
	ver  int32
}

// backlog is what a workload wrote: its changes in order and the final
// state the destination must reach.
type backlog struct {
	ops       []op
	liveRows  int64 // rows in the table at the end
	verSum    int64 // sum of ver over those rows
	endLSN    string
	buildTime time.Duration
}

const tableDDL = `CREATE TABLE %s (
	id bigint PRIMARY KEY,
	ver integer NOT NULL,
	qty integer NOT NULL,
	amount bigint NOT NULL,
	price double precision NOT NULL,
	note text NOT NULL,
	ts timestamptz NOT NULL,
	attrs jsonb NOT NULL)`

var baseTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// row is the content of row id at version ver: about 200 bytes on disk
// (bigint key, ints, a double, a short text, a timestamptz, a small jsonb).
type row struct {
	id     int64
	ver    int32
	qty    int32
	amount int64
	price  float64
	note   string
	ts     time.Time
	attrs  string
}

func makeRow(id int64, ver int32) row {
	return row{
		id:     id,
		ver:    ver,
		qty:    int32(id%97) + ver,
		amount: id*1000 + int64(ver),
		price:  float64(id%10000)/100 + float64(ver)/7,
		note:   "order " + strconv.FormatInt(id, 10) + " v" + strconv.Itoa(int(ver)) + " shipped to warehouse north-east",
		ts:     baseTime.Add(time.Duration(id)*time.Millisecond + time.Duration(ver)*time.Second),
		attrs:  `{"sku": "SKU-` + strconv.FormatInt(id%1000, 10) + `", "qty": ` + strconv.Itoa(int(ver)) + `, "tags": ["a", "b"], "gift": false}`,
	}
}

func (r row) values() []any {
	return []any{r.id, r.ver, r.qty, r.amount, r.price, r.note, r.ts, r.attrs}
}

// sqlValues is the row as a VALUES tuple (only digits and safe characters,
// so no quoting beyond the literal quotes).
func (r row) sqlValues(b *strings.Builder) {
	fmt.Fprintf(b, "(%d,%d,%d,%d,%s,'%s','%s','%s')", r.id, r.ver, r.qty, r.amount,
		strconv.FormatFloat(r.price, 'g', -1, 64), r.note, r.ts.Format(time.RFC3339Nano), r.attrs)
}

var columns = []string{"id", "ver", "qty", "amount", "price", "note", "ts", "attrs"}

// genOps decides a workload's changes: all inserts, or 70% inserts, 20%
// updates and 10% deletes of random live rows (seeded: every run the same).
func genOps(w workload) ([]op, int64, int64) {
	rng := rand.New(rand.NewPCG(42, uint64(len(w.Name))))
	n := w.Changes - 1 // the sentinel is the last change
	ops := make([]op, 0, w.Changes)
	live := make([]int64, 0, n)
	pos := make(map[int64]int, n)
	ver := make(map[int64]int32, n)
	var next int64 = 1
	for i := 0; i < n; i++ {
		k := rng.IntN(100)
		switch {
		case w.Mix == "insert" || k < 70 || len(live) < 100:
			id := next
			next++
			pos[id] = len(live)
			live = append(live, id)
			ver[id] = 1
			ops = append(ops, op{'c', id, 1})
		case k < 90:
			id := live[rng.IntN(len(live))]
			ver[id]++
			ops = append(ops, op{'u', id, ver[id]})
		default:
			j := rng.IntN(len(live))
			id := live[j]
			last := live[len(live)-1]
			live[j], pos[last] = last, j
			live = live[:len(live)-1]
			delete(pos, id)
			ops = append(ops, op{'d', id, ver[id]})
			delete(ver, id)
		}
	}
	ops = append(ops, op{'c', -1, 1}) // sentinel: visible means everything before it is applied
	var sum int64 = 1
	for _, v := range ver {
		sum += int64(v)
	}
	return ops, int64(len(live)) + 1, sum
}

// buildBacklog writes the workload's changes to the source table in
// transactions of w.TxSize, over the simple protocol with many
// transactions per round trip, so that writing 1M changes takes seconds.
// The sentinel goes in a transaction of its own, last.
func buildBacklog(ctx context.Context, conn *pgx.Conn, w workload) (*backlog, error) {
	start := time.Now()
	bl := &backlog{}
	bl.ops, bl.liveRows, bl.verSum = genOps(w)
	tbl := pgx.Identifier{w.table}.Sanitize()
	if w.Name == "bigtx" {
		// One transaction of every row, written by the server.
		n := len(bl.ops) - 1
		sql := fmt.Sprintf(`INSERT INTO %s SELECT g, 1, (g %% 97)::int + 1, g*1000+1, (g %% 10000)/100.0 + 1/7.0,
			'order ' || g || ' v1 shipped to warehouse north-east', '2026-01-01'::timestamptz + g * interval '1 ms',
			('{"sku": "SKU-' || (g %% 1000) || '", "qty": 1, "tags": ["a", "b"], "gift": false}')::jsonb
			FROM generate_series(1, %d) g`, tbl, n)
		if _, err := conn.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("big transaction: %w", err)
		}
	} else {
		var b strings.Builder
		flush := func() error {
			if b.Len() == 0 {
				return nil
			}
			_, err := conn.PgConn().Exec(ctx, b.String()).ReadAll()
			b.Reset()
			if err != nil {
				return fmt.Errorf("write backlog of %s: %w", w.Name, err)
			}
			return nil
		}
		ops := bl.ops[:len(bl.ops)-1]
		for i := 0; i < len(ops); i += w.TxSize {
			tx := ops[i:min(i+w.TxSize, len(ops))]
			b.WriteString("BEGIN;")
			if w.Mix == "insert" {
				b.WriteString("INSERT INTO " + tbl + " VALUES ")
				for j, o := range tx {
					if j > 0 {
						b.WriteByte(',')
					}
					makeRow(o.id, o.ver).sqlValues(&b)
				}
				b.WriteByte(';')
			} else {
				for _, o := range tx {
					switch o.kind {
					case 'c':
						b.WriteString("INSERT INTO " + tbl + " VALUES ")
						makeRow(o.id, o.ver).sqlValues(&b)
					case 'u':
						r := makeRow(o.id, o.ver)
						fmt.Fprintf(&b, "UPDATE %s SET ver=%d, qty=%d, amount=%d, price=%s, note='%s', ts='%s', attrs='%s' WHERE id=%d",
							tbl, r.ver, r.qty, r.amount, strconv.FormatFloat(r.price, 'g', -1, 64), r.note, r.ts.Format(time.RFC3339Nano), r.attrs, r.id)
					case 'd':
						fmt.Fprintf(&b, "DELETE FROM %s WHERE id=%d", tbl, o.id)
					}
					b.WriteByte(';')
				}
			}
			b.WriteString("COMMIT;")
			if b.Len() > 256<<10 {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + tbl + " VALUES ")
	makeRow(-1, 1).sqlValues(&sb)
	if _, err := conn.Exec(ctx, sb.String()); err != nil {
		return nil, fmt.Errorf("sentinel: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&bl.endLSN); err != nil {
		return nil, err
	}
	bl.buildTime = time.Since(start)
	return bl, nil
}
