package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

const serverLatencyMethod = "1-row insert transactions generated inside PostgreSQL (DO loops committing each row, " +
	"paced to a schedule; no client): each row carries its scheduled time, and the destination table has an extra " +
	"column Rosetta does not know, arrived DEFAULT clock_timestamp(), stamped by the sink's insert. Latency is " +
	"arrived minus the scheduled time (coordinated omission corrected, excludes the sink's commit), computed in SQL: " +
	"nothing polls, so no client competes for the cores. rosetta dev's CPU per transaction is its CPU time over the phase."

// serverGenerators is how many DO loops share an offered load: one backend
// commits about 10k single-row transactions a second here.
func serverGenerators(rate float64) int {
	if rate > 4000 {
		return 2
	}
	return 1
}

// serverLatencyPhase offers rate single-row transactions per second for
// dur from inside the source database and measures each row's arrival as
// the destination stamps it. ids are firstID and up.
func (b *bench) serverLatencyPhase(ctx context.Context, r *rosettaRun, dst *pgx.Conn, table string, rate float64, dur time.Duration, firstID int64) (latencyPhase, error) {
	n := int64(rate * dur.Seconds())
	gens := serverGenerators(rate)
	p := latencyPhase{OfferedPerSecond: rate, Issued: int(n), Method: "server"}
	perGen := rate / float64(gens)
	t0 := time.Now().Add(300 * time.Millisecond)
	tbl := pgx.Identifier{table}.Sanitize()
	cpu0, _ := statCPU(r.cmd.Process.Pid)
	errc := make(chan error, gens)
	for k := 0; k < gens; k++ {
		// Generator k writes ids firstID + i*gens + k, row i due at
		// t0 + i/perGen.
		count := (n - int64(k) + int64(gens) - 1) / int64(gens)
		do := fmt.Sprintf(`DO $$
DECLARE
	t0 timestamptz := '%s';
	i bigint := 0;
	due bigint;
BEGIN
	WHILE i < %d LOOP
		due := least(%d, floor(extract(epoch FROM clock_timestamp() - t0) * %f)::bigint + 1);
		IF i >= due THEN
			PERFORM pg_sleep(0.0002);
			CONTINUE;
		END IF;
		WHILE i < due LOOP
			INSERT INTO %s VALUES (%d + i * %d, 1, 1, 1, 1.5, 'latency probe',
				t0 + (i / %f) * interval '1 second', '{"probe": true}');
			COMMIT;
			i := i + 1;
		END LOOP;
	END LOOP;
END $$`, t0.Format(time.RFC3339Nano), count, count, perGen, tbl, firstID+int64(k), gens, perGen)
		go func() { errc <- b.pg.exec(ctx, "src", do) }()
	}
	for k := 0; k < gens; k++ {
		if err := <-errc; err != nil {
			return p, fmt.Errorf("generator: %w", err)
		}
	}
	end := time.Now()
	p.Seconds = end.Sub(t0).Seconds()
	p.AchievedPerSecond = float64(n) / p.Seconds
	sel := fmt.Sprintf(`FROM %s WHERE id >= %d AND id < %d`, pgx.Identifier{"public", table}.Sanitize(), firstID, firstID+n)
	var seen int64
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = waitFor(wctx, 50*time.Millisecond, func() (bool, error) {
		err := dst.QueryRow(ctx, "SELECT count(*) "+sel).Scan(&seen)
		return seen >= n, err
	})
	if cpu1, ok := statCPU(r.cmd.Process.Pid); ok {
		p.CPUMicrosPerTx = float64((cpu1 - cpu0).Microseconds()) / float64(n)
	}
	p.NotVisible = int(n - seen)
	err := dst.QueryRow(ctx, `SELECT count(*),
		coalesce(percentile_disc(0.5) WITHIN GROUP (ORDER BY d), 0),
		coalesce(percentile_disc(0.95) WITHIN GROUP (ORDER BY d), 0),
		coalesce(percentile_disc(0.99) WITHIN GROUP (ORDER BY d), 0),
		coalesce(max(d), 0)
		FROM (SELECT extract(epoch FROM arrived - ts) * 1000 AS d `+sel+`) s`).
		Scan(&p.EndToEnd.N, &p.EndToEnd.P50, &p.EndToEnd.P95, &p.EndToEnd.P99, &p.EndToEnd.Max)
	if err != nil {
		return p, fmt.Errorf("latency percentiles: %w", err)
	}
	return p, nil
}
