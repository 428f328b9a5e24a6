package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/secrets"
)

var (
	consoleRuns      = flag.Int("console-runs", 5, "first renders of the console's overview to time in Chromium (0 skips them)")
	consolePipelines = flag.Int("console-pipelines", 50, "paused pipelines on the overview whose first render is timed")
)

// consoleTargetMS is the target for the overview's first render.
const consoleTargetMS = 1000

// consoleResult is the console phase: time to first render of the
// overview, in Chromium on loopback, from navigation start (a fresh
// browser context each run: no cache, no session) until every pipeline's
// row is in the table.
type consoleResult struct {
	Pipelines int       `json:"pipelines"`
	RunsMS    []float64 `json:"runs_ms"`
	MedianMS  float64   `json:"median_ms"`
	MaxMS     float64   `json:"max_ms"`
}

// runConsole starts `rosetta dev` (with the console built in) over a
// config DB holding consolePipelines paused pipelines, one destination
// each, and times the overview's first render with web/e2e/overview.bench.mjs.
func (b *bench) runConsole(ctx context.Context) (*consoleResult, error) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		return nil, fmt.Errorf("chromium not found (scripts/ensure-browser.sh installs it): %w", err)
	}
	r := b.newRun("console", "dev", "postgres", "", "")
	if err := r.configurePaused(ctx, *consolePipelines); err != nil {
		return nil, fmt.Errorf("configure %d paused pipelines: %w", *consolePipelines, err)
	}
	if err := r.start(""); err != nil {
		return nil, err
	}
	defer r.stop()
	url := "http://" + r.httpAddr
	if err := waitFor(ctx, 200*time.Millisecond, func() (bool, error) {
		if r.exited() {
			return false, fmt.Errorf("rosetta dev exited: %s", r.logTail())
		}
		resp, err := http.Get(url + "/api/v1/health")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		return nil, err
	}
	web, err := filepath.Abs("web")
	if err != nil {
		return nil, err
	}
	node := exec.CommandContext(ctx, "node", "e2e/overview.bench.mjs")
	node.Dir = web
	node.Env = append(os.Environ(), "CONSOLE_URL="+url, "ADMIN_TOKEN="+benchAPIToken, "CHROMIUM="+chromium,
		"RUNS="+strconv.Itoa(*consoleRuns), "PIPELINES="+strconv.Itoa(*consolePipelines))
	var out, stderr bytes.Buffer
	node.Stdout, node.Stderr = &out, &stderr
	if err := node.Run(); err != nil {
		return nil, fmt.Errorf("web/e2e/overview.bench.mjs: %w: %s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	res := &consoleResult{Pipelines: *consolePipelines}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res.RunsMS); err != nil || len(res.RunsMS) == 0 {
		return nil, fmt.Errorf("web/e2e/overview.bench.mjs printed %q: want a JSON array of milliseconds last", out.String())
	}
	sorted := slices.Clone(res.RunsMS)
	slices.Sort(sorted)
	res.MedianMS, res.MaxMS = sorted[len(sorted)/2], sorted[len(sorted)-1]
	return res, nil
}

// configurePaused creates the run's config DB with a source, a PostgreSQL
// destination and n paused pipelines (never started: nothing connects to
// the source), one destination each, so that the overview lists n rows.
func (r *rosettaRun) configurePaused(ctx context.Context, n int) error {
	if n < 1 {
		return errors.New("want at least one pipeline")
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	for _, db := range []string{r.cfgDB, r.dstDB} {
		if err := r.b.pg.createDB(ctx, db); err != nil {
			return err
		}
	}
	box, err := secrets.NewBox(secretKey)
	if err != nil {
		return err
	}
	st, err := configstore.Open(ctx, r.b.pg.dsn(r.cfgDB), box)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	pw := "unused"
	src, err := st.CreateSource(ctx, configstore.SourceInput{Name: "console", Host: "127.0.0.1", Port: r.b.pg.port,
		Database: "src", User: "postgres", Password: &pw, Publication: "console_bench_pub", Slot: "console_bench_slot", SSLMode: "disable"})
	if err != nil {
		return err
	}
	dst, err := st.CreateDestination(ctx, configstore.DestinationInput{Name: "warehouse", Type: "postgres", Config: map[string]any{
		"host": "127.0.0.1", "port": r.b.pg.port, "database": r.dstDB, "user": "postgres", "password": "unused", "schema": "public", "sslmode": "disable"}})
	if err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		// Created PAUSED (CreatePipeline's default).
		if _, err := st.CreatePipeline(ctx, configstore.PipelineInput{Name: fmt.Sprintf("pipeline-%03d", i), SourceID: src.ID,
			DestinationIDs: []int64{dst.ID}, Tables: []string{fmt.Sprintf("public.t%03d", i)}}); err != nil {
			return err
		}
	}
	return nil
}
