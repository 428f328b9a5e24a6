package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const schemaSQL = `
CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(14,2) NOT NULL,
  version int NOT NULL, active boolean, note text);
CREATE TABLE lines (acct bigint, n bigint, sku text, qty int, PRIMARY KEY (acct, n));
CREATE TABLE noise (id bigserial PRIMARY KEY, v text);
CREATE TABLE docs (id bigint PRIMARY KEY, score int NOT NULL, body text);
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
`

// watched are the pipeline's tables and the columns compared.
var watched = map[string][]string{
	"accounts": {"id", "owner", "balance", "version", "active", "note"},
	"lines":    {"acct", "n", "sku", "qty"},
	"docs":     {"id", "score", "body"},
}

// hashed are the watched columns compared by their md5 (300 kB values).
var hashed = map[string]bool{"body": true}

// workload writes to the watched tables until stopped: inserts, updates,
// deletes and primary-key changes across both tables, in transactions of
// one to a few hundred rows. Source errors (a source crash) are retried
// with a fresh connection; only committed transactions count.
type workload struct {
	t   *testing.T
	dsn string

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	committed atomic.Int64
	paused    atomic.Bool
	// docs makes the workload also write docs rows with 300 kB
	// out-of-line (STORAGE EXTERNAL) bodies, mostly updated by statements
	// that leave the body untouched (unchanged TOAST in the events).
	docs bool
	// gap is a pause after each commit, on top of the usual 0-3 ms: it
	// keeps the write rate within what slower deployments apply (a
	// three-replica stream on a loaded machine), so that a fault's
	// recovery is measured rather than a growing backlog.
	gap     time.Duration
	failed  atomic.Int64
	lastErr atomic.Value
}

// startWorkload starts writing; seed separates the id ranges of workloads
// running at once.
func startWorkload(t *testing.T, dsn string, seed uint64) *workload {
	return startWorkloadOf(t, dsn, seed, false)
}

// startWorkloadOf is startWorkload, with docs rows when docs is set.
func startWorkloadOf(t *testing.T, dsn string, seed uint64, docs bool) *workload {
	return startWorkloadWith(t, &workload{dsn: dsn, docs: docs}, seed)
}

// startWorkloadWith starts wl (its dsn and options set) writing.
func startWorkloadWith(t *testing.T, wl *workload, seed uint64) *workload {
	ctx, cancel := context.WithCancel(context.Background())
	wl.t, wl.cancel = t, cancel
	wl.wg.Add(1)
	go func() {
		defer wl.wg.Done()
		wl.run(ctx, seed)
	}()
	t.Cleanup(func() { wl.stop() })
	return wl
}

// stop ends the workload and waits for it; it returns the number of
// committed transactions.
func (wl *workload) stop() int64 {
	wl.cancel()
	wl.wg.Wait()
	return wl.committed.Load()
}

func (wl *workload) run(ctx context.Context, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	next := int64(seed) * 10_000_000 // next account id
	base := next
	moves := int64(0) // lines' key changes move n by a multiple of 1000 used once
	docs := int64(0)  // docs rows inserted (ids 1..docs)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for ctx.Err() == nil {
		if wl.paused.Load() {
			sleep(ctx, 50*time.Millisecond)
			continue
		}
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c, err := pgx.Connect(cctx, wl.dsn)
			cancel()
			if err != nil {
				wl.fail(err)
				sleep(ctx, 200*time.Millisecond)
				continue
			}
			conn = c
		}
		pick := func() int64 { return base + rng.Int64N(max(next-base, 1)) }
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if wl.docs && rng.IntN(3) > 0 {
				return wl.writeDocs(ctx, tx, rng, &docs)
			}
			for range 1 + rng.IntN(4) {
				var err error
				switch r := rng.IntN(100); {
				case r < 35 || next-base < 20: // a few new accounts with lines
					n := 1 + rng.IntN(3)
					for range n {
						id := next
						next++
						if _, err = tx.Exec(ctx, `INSERT INTO accounts VALUES ($1, $2, $3, 1, $4, $5)`,
							id, fmt.Sprintf("owner %d", id), rng.IntN(100000), rng.IntN(2) == 0, nullable(rng, "n")); err != nil {
							return err
						}
						if _, err = tx.Exec(ctx, `INSERT INTO lines SELECT $1, g, 'sku-' || g, g FROM generate_series(1, $2) g`,
							id, 1+rng.IntN(3)); err != nil {
							return err
						}
					}
				case r < 60: // updates
					_, err = tx.Exec(ctx, `UPDATE accounts SET balance = balance + 1, version = version + 1,
						active = NOT coalesce(active, false), note = $2 WHERE id = $1`, pick(), nullable(rng, "u"))
					if err == nil {
						_, err = tx.Exec(ctx, `UPDATE lines SET qty = qty + 1 WHERE acct = $1`, pick())
					}
				case r < 70: // deletes
					id := pick()
					_, err = tx.Exec(ctx, `DELETE FROM lines WHERE acct = $1`, id)
					if err == nil && rng.IntN(2) == 0 {
						_, err = tx.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, id)
					}
				case r < 78: // primary-key changes (to a range no insert uses)
					id := pick()
					_, err = tx.Exec(ctx, `UPDATE accounts SET id = id + 1000000000000, version = version + 1 WHERE id = $1`, id)
					if err == nil {
						moves++
						_, err = tx.Exec(ctx, `UPDATE lines SET n = n + $2 WHERE acct = $1 AND n BETWEEN 1 AND 999`, pick(), moves*1000)
					}
				case r < 88: // delete and re-insert one key in one transaction
					id := pick()
					_, err = tx.Exec(ctx, `DELETE FROM lines WHERE acct = $1 AND n = 1`, id)
					if err == nil {
						_, err = tx.Exec(ctx, `INSERT INTO lines VALUES ($1, 1, 'again', 7) ON CONFLICT DO NOTHING`, id)
					}
				case r < 96: // many changes of one row in one transaction
					id := pick()
					for i := range 3 {
						if _, err = tx.Exec(ctx, `UPDATE accounts SET owner = $2, version = version + 1 WHERE id = $1`,
							id, fmt.Sprintf("rename %d", i)); err != nil {
							return err
						}
					}
				default: // a larger transaction
					_, err = tx.Exec(ctx, `UPDATE lines SET qty = qty + 10, sku = sku || '+' WHERE acct BETWEEN $1 AND $1 + 100`, pick())
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wl.fail(err)
			conn.Close(context.Background())
			conn = nil
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		wl.committed.Add(1)
		sleep(ctx, wl.gap+time.Duration(rng.IntN(4))*time.Millisecond)
	}
}

// writeDocs inserts a docs row with a 300 kB body (at most 40 rows, in two
// transactions of three), or
// updates rows leaving the body untouched, or rewrites or deletes one.
func (wl *workload) writeDocs(ctx context.Context, tx pgx.Tx, rng *rand.Rand, n *int64) error {
	pick := func() int64 { return 1 + rng.Int64N(max(*n, 1)) }
	var err error
	switch r := rng.IntN(100); {
	case r < 25 && *n < 40 || *n < 10:
		*n++
		_, err = tx.Exec(ctx, `INSERT INTO docs VALUES ($1, 0, repeat(md5($2), 9400))`, *n, fmt.Sprint(rng.Int64()))
	case r < 85: // the body stays as it is: unchanged TOAST
		_, err = tx.Exec(ctx, `UPDATE docs SET score = score + 1 WHERE id = $1 OR id = $2`, pick(), pick())
	case r < 95:
		_, err = tx.Exec(ctx, `UPDATE docs SET score = score + 1, body = repeat(md5($2), 9400) WHERE id = $1`, pick(), fmt.Sprint(rng.Int64()))
	default:
		_, err = tx.Exec(ctx, `DELETE FROM docs WHERE id = $1`, pick())
	}
	return err
}

func (wl *workload) fail(err error) {
	wl.failed.Add(1)
	wl.lastErr.Store(err.Error())
}

func nullable(rng *rand.Rand, prefix string) any {
	if rng.IntN(4) == 0 {
		return nil
	}
	return fmt.Sprintf("%s-%d", prefix, rng.IntN(1000))
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
