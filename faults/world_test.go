package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// world is one test's deployment: a source PostgreSQL cluster, a cluster
// holding the config database (and, unless the test needs the destination
// on its own cluster, the destination database), an external nats-server,
// Redis for dead letters, and rosetta api, capture and sink as three
// processes.
type world struct {
	t        *testing.T
	srcPG    *testkit.Postgres
	cfgPG    *testkit.Postgres
	dstPG    *testkit.Postgres
	sourceDB string
	configDB string
	destDB   string
	nats     *natsServer
	redis    *testkit.Redis
	httpAddr string
	js       jetstream.JetStream

	env                []string // the services' environment
	api, capture, sink *proc

	// With worldOptions.proxies, each pair of components talks through a
	// proxy of its own, so that one link can be stalled or reset.
	pxSource      *testkit.Proxy // capture (and backfill) -> source PostgreSQL
	pxDest        *testkit.Proxy // sink -> destination PostgreSQL
	pxCaptureNATS *testkit.Proxy // capture -> nats-server
	pxSinkNATS    *testkit.Proxy // sink -> nats-server

	sourceID, pipelineID, destID int64
	partitions                   int
	replicas                     int // the source stream's (worldOptions.replicas)
}

// roleNATS is a NATS server the test started with per-role users: the
// services connect with env[their role], the observer with observer.
type roleNATS struct {
	url       string
	env       map[string][]string
	observer  []nats.Option
	passwords map[string]string
	ca        *testkit.CA
	client    testkit.Leaf
	// srv loads dir/nats-server.conf, which includes dir/auth.conf.
	srv *server.Server
	dir string
}

type worldOptions struct {
	// roles, when set, replaces the nats-server process: every service
	// connects to it as its own user.
	roles *roleNATS
	// ownDestCluster puts the destination on a cluster of its own, so that
	// stopping it leaves the config database up.
	ownDestCluster bool
	// proxies routes capture<->source, capture<->NATS, sink<->NATS and
	// sink<->destination through testkit proxies (w.px*).
	proxies bool
	// env is added to the services' environment.
	env []string
	// partitions is the source's partitions setting (0: the default, 1).
	partitions int
	// natsURL, when set, replaces the nats-server process with NATS servers
	// the test started (a cluster: comma-separated URLs).
	natsURL string
	// replicas is the source stream's replica count the services are set
	// to (ROSETTA_STREAM_REPLICAS); startAudit creates the stream with it.
	replicas int
}

func newWorld(t *testing.T, opt worldOptions) *world {
	t.Helper()
	w := &world{t: t, srcPG: testkit.StartPostgres(t), cfgPG: testkit.StartPostgres(t),
		partitions: max(opt.partitions, 1), replicas: max(opt.replicas, 1)}
	w.dstPG = w.cfgPG
	if opt.ownDestCluster {
		w.dstPG = testkit.StartPostgres(t)
	}
	w.sourceDB = w.srcPG.CreateDatabase(t, "source")
	w.configDB = w.cfgPG.CreateDatabase(t, "config")
	w.destDB = w.dstPG.CreateDatabase(t, "dest")
	w.srcPG.Exec(t, w.sourceDB, schemaSQL)
	natsURL := ""
	switch {
	case opt.roles != nil:
		natsURL = opt.roles.url
	case opt.natsURL != "":
		natsURL = opt.natsURL
	default:
		w.nats = startNATSServer(t)
		natsURL = w.nats.url()
	}
	w.redis = testkit.StartRedis(t)
	w.httpAddr = "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var observerOpts []nats.Option
	if opt.roles != nil {
		observerOpts = opt.roles.observer
	}
	nc, js, err := natsx.ConnectWith(ctx, natsURL, "faults-observer", nil, natsx.Liveness{}, observerOpts...)
	if err != nil {
		t.Fatalf("connect observer to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	w.js = js

	env := []string{
		"ROSETTA_CONFIG_DSN=" + w.cfgPG.DSN(w.configDB),
		"ROSETTA_HTTP_ADDR=" + w.httpAddr,
		"ROSETTA_NATS_URL=" + natsURL,
		"ROSETTA_REDIS_URL=" + w.redis.URL(),
		"ROSETTA_DATA_DIR=" + t.TempDir(),
		"ROSETTA_SECRET_KEY=faults-test-secret-key-0123456789",
		"ROSETTA_API_TOKEN=" + apiToken,
		"ROSETTA_RECONCILE_INTERVAL=2s",
		"ROSETTA_LOG_LEVEL=info",
		"ROSETTA_LOG_FORMAT=text",
	}
	env = append(env, opt.env...)
	w.env = env
	captureEnv, sinkEnv := env, env
	if opt.proxies {
		w.pxSource = testkit.StartProxy(t, "127.0.0.1:"+strconv.Itoa(w.srcPG.Port))
		w.pxDest = testkit.StartProxy(t, "127.0.0.1:"+strconv.Itoa(w.dstPG.Port))
		w.pxCaptureNATS = testkit.StartProxy(t, w.nats.addr())
		w.pxSinkNATS = testkit.StartProxy(t, w.nats.addr())
		// The last of duplicate variables wins (os/exec).
		captureEnv = append(slices.Clone(env), "ROSETTA_NATS_URL=nats://"+w.pxCaptureNATS.Addr())
		sinkEnv = append(slices.Clone(env), "ROSETTA_NATS_URL=nats://"+w.pxSinkNATS.Addr())
	}
	apiEnv := env
	if opt.roles != nil {
		// Each service as its own NATS user (deploy/nats/auth.conf).
		apiEnv = append(slices.Clone(env), opt.roles.env["api"]...)
		captureEnv = append(slices.Clone(captureEnv), opt.roles.env["capture"]...)
		sinkEnv = append(slices.Clone(sinkEnv), opt.roles.env["sink"]...)
	}
	w.api = newProc(t, "api", apiEnv, bins.rosetta, "api")
	w.capture = newProc(t, "capture", captureEnv, bins.rosetta, "capture")
	w.sink = newProc(t, "sink", sinkEnv, bins.rosetta, "sink")
	w.api.start()
	w.waitHealthy()
	w.capture.start()
	w.sink.start()
	return w
}

// apiToken is the harness's bootstrap admin token (ROSETTA_API_TOKEN).
const apiToken = "faults-test-api-token-0123456789abcdef"

// waitHealthy waits until the API answers /ready: its dependencies answer.
func (w *world) waitHealthy() {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if !w.api.running() {
			w.t.Fatalf("api exited during start")
		}
		req, _ := http.NewRequest("GET", "http://"+w.httpAddr+"/api/v1/ready", nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.t.Fatalf("api not healthy within 60s")
}

// restartAPI restarts the api process and waits until it answers.
func (w *world) restartAPI() {
	w.t.Helper()
	w.api.start()
	w.waitHealthy()
}

// call calls the REST API; it returns the status and decodes a JSON answer
// into out (may be nil).
func (w *world) call(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+w.httpAddr+"/api/v1"+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+apiToken)
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode %s: %w", method, path, raw, err)
		}
	}
	return resp.StatusCode, nil
}

func (w *world) mustCall(method, path string, body, out any) {
	w.t.Helper()
	if _, err := w.call(method, path, body, out); err != nil {
		w.t.Fatal(err)
	}
}

// createSource registers the source database (w.sourceID).
func (w *world) createSource() {
	w.t.Helper()
	var src struct{ ID int64 }
	w.mustCall("POST", "/sources", map[string]any{
		"name": "src", "host": "127.0.0.1", "port": w.sourcePort(), "database": w.sourceDB,
		"user": "postgres", "password": "source-pw", "sslmode": "disable", "partitions": w.partitions,
	}, &src)
	w.sourceID = src.ID
}

// sourcePort and destPort are the ports the services reach the source and
// the destination on: their proxy's, if any.
func (w *world) sourcePort() int {
	if w.pxSource != nil {
		return w.pxSource.Port()
	}
	return w.srcPG.Port
}

func (w *world) destPort() int {
	if w.pxDest != nil {
		return w.pxDest.Port()
	}
	return w.dstPG.Port
}

// createPipeline registers the destination and a pipeline over the watched
// tables and starts it, then waits until capture streams. It registers the
// source first unless createSource ran.
func (w *world) createPipeline() {
	w.t.Helper()
	if w.sourceID == 0 {
		w.createSource()
	}
	var dst, pipe struct{ ID int64 }
	w.mustCall("POST", "/destinations", map[string]any{
		"name": "dst", "type": "postgres", "config": map[string]any{
			"host": "127.0.0.1", "port": w.destPort(), "database": w.destDB, "user": "postgres",
			"password": "dest-pw", "schema": "public", "sslmode": "disable",
		},
	}, &dst)
	w.mustCall("POST", "/pipelines", map[string]any{
		"name": "p", "source_id": w.sourceID, "destination_ids": []int64{dst.ID},
		"tables": []string{"public.accounts", "public.lines", "public.docs"},
	}, &pipe)
	w.mustCall("POST", fmt.Sprintf("/pipelines/%d/start", pipe.ID), nil, nil)
	w.pipelineID, w.destID = pipe.ID, dst.ID
	w.waitStreaming()
}

// waitStreaming waits until the source's slot is active and the pipeline's
// consumers (one per partition) exist: changes written from then on are captured and consumed.
func (w *world) waitStreaming() {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if s, err := w.slot(); err == nil && s.active {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := natsx.PipelineConsumers(ctx, w.js, w.sourceID, w.pipelineID, w.destID, w.partitions)
			cancel()
			if err == nil {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	w.t.Fatalf("capture did not start streaming within 60s")
}

type slotState struct {
	name      string
	active    bool
	confirmed uint64
	walStatus string
}

// slot reads the source's replication slot (the only one on its cluster).
func (w *world) slot() (slotState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.srcPG.DSN(w.sourceDB))
	if err != nil {
		return slotState{}, err
	}
	defer conn.Close(ctx)
	var s slotState
	var lsn *string
	err = conn.QueryRow(ctx, `SELECT slot_name, active, confirmed_flush_lsn::text, coalesce(wal_status, '') FROM pg_replication_slots
		WHERE database = $1 AND NOT temporary ORDER BY slot_name LIMIT 1`, w.sourceDB).Scan(&s.name, &s.active, &lsn, &s.walStatus)
	if err != nil {
		return s, err
	}
	if lsn != nil {
		s.confirmed, err = parseLSN(*lsn)
	}
	return s, err
}

// currentLSN is the source's current WAL write position.
func (w *world) currentLSN() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.srcPG.DSN(w.sourceDB))
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
		return 0, err
	}
	return parseLSN(s)
}

func parseLSN(s string) (uint64, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", s, err)
	}
	return uint64(hi)<<32 | uint64(lo), nil
}

func fmtLSN(l uint64) string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// sigtermAndRestart stops p with SIGTERM, asserts that it exits cleanly
// within 30s, and starts it again.
func (w *world) sigtermAndRestart(p *proc) {
	w.t.Helper()
	inTime, st := p.stop(syscall.SIGTERM, 30*time.Second)
	if !inTime {
		w.t.Errorf("%s did not exit within 30s of SIGTERM", p.name)
	} else if st != nil && !st.Success() {
		w.t.Errorf("%s exited with %v after SIGTERM, want status 0", p.name, st)
	}
	if p == w.api {
		w.restartAPI()
		return
	}
	p.start()
}
