package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// subscriptionQuery finds the logical replication apply worker of the
// ceiling's subscription, whose CPU the run counts beside the walsender's.
const subscriptionQuery = `SELECT pid FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL`

// subscriptionCeiling drains a copy of the backlog's slot with
// PostgreSQL's own logical replication into a table of another database
// of the same server: what a PostgreSQL-to-PostgreSQL user would run
// instead of Rosetta. CREATE SUBSCRIPTION … (create_slot = false,
// copy_data = false) on the copied slot applies exactly the backlog; the
// time runs from the subscription's creation to the sentinel row visible.
func (b *bench) subscriptionCeiling(ctx context.Context, slot string, bl *backlog, table string) (measure, error) {
	const db = "subceil"
	b.pg.dropDB(ctx, db)
	if err := b.pg.createDB(ctx, db); err != nil {
		return measure{}, err
	}
	defer b.pg.dropDB(context.Background(), db)
	conn, err := b.pg.connect(ctx, db)
	if err != nil {
		return measure{}, err
	}
	defer conn.Close(context.Background())
	tbl := pgx.Identifier{table}.Sanitize()
	if _, err := conn.Exec(ctx, fmt.Sprintf(tableDDL, tbl)); err != nil {
		return measure{}, err
	}
	sub := table + "_sub"
	ws, err := b.sampleBackends(ctx, "src", walsenderQuery, slot)
	if err != nil {
		return measure{}, err
	}
	defer ws.total()
	aw, err := b.sampleBackends(ctx, db, subscriptionQuery, sub)
	if err != nil {
		return measure{}, err
	}
	defer aw.total()
	start := time.Now()
	// binary = true: the apply worker's fastest input, as a tuned
	// installation would run it.
	create := fmt.Sprintf(`CREATE SUBSCRIPTION %s CONNECTION '%s' PUBLICATION %s
		WITH (create_slot = false, copy_data = false, slot_name = '%s', binary = true)`,
		pgx.Identifier{sub}.Sanitize(), b.pg.dsn("src"), pubName, slot)
	if _, err := conn.Exec(ctx, create); err != nil {
		return measure{}, fmt.Errorf("create subscription: %w", err)
	}
	defer func() {
		c := context.Background()
		_, _ = conn.Exec(c, "ALTER SUBSCRIPTION "+pgx.Identifier{sub}.Sanitize()+" DISABLE")
		_, _ = conn.Exec(c, "ALTER SUBSCRIPTION "+pgx.Identifier{sub}.Sanitize()+" SET (slot_name = NONE)")
		_, _ = conn.Exec(c, "DROP SUBSCRIPTION "+pgx.Identifier{sub}.Sanitize())
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if err := waitFor(wctx, 20*time.Millisecond, func() (bool, error) {
		return rowVisible(ctx, conn, table, -1)
	}); err != nil {
		return measure{}, fmt.Errorf("subscription drain: %w", err)
	}
	n := int64(len(bl.ops))
	m := newMeasure(n, time.Since(start))
	wsCPU, _ := ws.total()
	awCPU, _ := aw.total()
	m.WalsenderCPUPerM = perMillion(wsCPU, n)
	m.DestinationCPUPerM = perMillion(awCPU, n)
	m.CPUSecPerMChgs = perMillion(awCPU, n)
	note, err := verifyPG(ctx, conn, table, bl)
	if err != nil {
		return m, err
	}
	m.Note = "PostgreSQL logical replication (binary) from subscription creation to the sentinel visible; CPU: the apply worker; " + note
	return m, nil
}
