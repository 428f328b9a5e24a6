package web_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/apitoken"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestConsoleInChromium runs the console's end-to-end suite
// (web/e2e/console.e2e.mjs) in Debian's Chromium driven by playwright-core,
// against `rosetta dev` with the console built into it, a real PostgreSQL
// (config, source and destination databases) and Redis (dead-letter
// queues). Screenshots of each page go to web/test-results/screenshots
// (ROSETTA_CONSOLE_ARTIFACTS overrides it).
//
// The front end's npm packages and Chromium are installed by the project's
// scripts (scripts/ensure-web-deps.sh, scripts/ensure-browser.sh); when
// they cannot be, the test fails saying so.
func TestConsoleInChromium(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, script := range []string{"ensure-web-deps.sh", "ensure-browser.sh", "build-web.sh"} {
		run(t, 10*time.Minute, filepath.Join(root, "scripts", script))
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found after scripts/ensure-browser.sh: %v", err)
	}
	// Built after build-web.sh so that the console is embedded.
	bin, cleanup, err := testkit.BuildBinary("../services/rosetta", "rosetta", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)

	pg := testkit.StartPostgres(t)
	redis := testkit.StartRedis(t)
	configDB := pg.CreateDatabase(t, "config")
	sourceDB := pg.CreateDatabase(t, "shop")
	destDB := pg.CreateDatabase(t, "warehouse")
	pg.Exec(t, sourceDB, `
		CREATE TABLE public.customers (id bigint PRIMARY KEY, name text NOT NULL, qty integer NOT NULL DEFAULT 0);
		CREATE TABLE public.orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL, amount numeric(12,2));
		CREATE TABLE public.events (id bigint, payload text);
		INSERT INTO public.customers SELECT g, 'customer ' || g, g FROM generate_series(1, 40) g;`)
	// The destination refuses negative quantities: a change carrying one is
	// dead-lettered until the constraint is dropped and it is recovered.
	pg.Exec(t, destDB, `
		CREATE TABLE public.customers (id bigint PRIMARY KEY, name text NOT NULL,
			qty integer NOT NULL CONSTRAINT customers_qty_check CHECK (qty >= 0));`)

	dataDir := t.TempDir()
	adminToken := randomToken(t)
	const secretKey = "console-e2e-secret-key-0123456789"
	httpAddr := "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	logs := &testkit.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "dev")
	cmd.Env = append(os.Environ(),
		"ROSETTA_CONFIG_DSN="+pg.DSN(configDB),
		"ROSETTA_HTTP_ADDR="+httpAddr,
		"ROSETTA_EMBEDDED_NATS_ADDR=127.0.0.1:"+strconv.Itoa(testkit.FreePort(t)),
		"ROSETTA_DATA_DIR="+dataDir,
		"ROSETTA_REDIS_URL="+redis.URL(),
		"ROSETTA_SECRET_KEY="+secretKey,
		"ROSETTA_RECONCILE_INTERVAL=2s",
		"ROSETTA_WAL_MONITOR_INTERVAL=2s",
		"ROSETTA_LOG_FORMAT=text",
		"ROSETTA_API_TOKEN="+adminToken,
	)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rosetta dev: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("rosetta log (tail):\n%s", logs.Tail(8000))
		}
	})
	waitHealthy(t, "http://"+httpAddr+"/api/v1/health", exited, logs)
	tokens := consoleTokens(t, pg.DSN(configDB), secretKey, adminToken)

	artifacts := os.Getenv("ROSETTA_CONSOLE_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(root, "web", "test-results", "screenshots")
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	node := exec.Command("node", "e2e/console.e2e.mjs")
	node.Dir = filepath.Join(root, "web")
	node.Env = append(os.Environ(),
		"CONSOLE_URL=http://"+httpAddr,
		"ADMIN_TOKEN="+tokens.admin,
		"VIEWER_TOKEN="+tokens.viewer,
		"CHROMIUM="+chromium,
		"SCREENSHOT_DIR="+artifacts,
		"PSQL="+filepath.Join(pg.BinDir(), "psql"),
		"PG_HOST="+pg.Host(),
		"PG_PORT="+strconv.Itoa(pg.Port),
		"SOURCE_DB="+sourceDB,
		"DEST_DB="+destDB,
		"DUCKDB_PATH="+filepath.Join(dataDir, "analytics.duckdb"),
	)
	out := &testkit.LogBuffer{}
	node.Stdout, node.Stderr = out, out
	done := make(chan error, 1)
	if err := node.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	go func() { done <- node.Wait() }()
	select {
	case err = <-done:
	case <-time.After(8 * time.Minute):
		node.Process.Kill()
		err = <-done
		t.Errorf("the console suite did not finish in 8 minutes")
	}
	t.Logf("console suite output:\n%s", out.String())
	if err != nil {
		t.Fatalf("console suite failed: %v (screenshots in %s)", err, artifacts)
	}
	t.Logf("screenshots in %s", artifacts)
}

func run(t *testing.T, timeout time.Duration, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s failed (it installs what the console's browser test needs: Node.js, npm packages, Debian's chromium): %v\n%s",
			filepath.Base(script), err, testkit.Tail(string(out), 4000))
	}
}

func waitHealthy(t *testing.T, url string, exited chan struct{}, logs *testkit.LogBuffer) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("rosetta dev exited during start:\n%s", logs.Tail(4000))
		default:
		}
		if code, err := httpGet(url); err == nil && code == http.StatusOK {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("rosetta dev not healthy after 90s:\n%s", logs.Tail(4000))
}

func httpGet(url string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

type tokens struct{ admin, viewer string }

// consoleTokens are the tokens the suite signs in with: the bootstrap admin
// token given to rosetta dev (ROSETTA_API_TOKEN), and a viewer token
// created in the config database as `rosetta token create` would.
func consoleTokens(t *testing.T, dsn, secretKey, admin string) tokens {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	box, err := secrets.NewBox(secretKey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := configstore.Open(ctx, dsn, box)
	if err != nil {
		t.Fatalf("open the config DB to create a viewer token: %v", err)
	}
	defer st.Close()
	viewer, _, err := st.CreateToken(ctx, configstore.TokenInput{Name: "console-viewer", Role: apitoken.Viewer})
	if err != nil {
		t.Fatalf("create a viewer token: %v", err)
	}
	return tokens{admin: admin, viewer: viewer}
}

func randomToken(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestConsoleUnitTests runs the front end's unit tests (vitest: the zod
// schemas against contracts/openapi.yaml, the forms, the role-based
// display) so that `make test` covers them.
func TestConsoleUnitTests(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	run(t, 10*time.Minute, filepath.Join(root, "scripts", "ensure-web-deps.sh"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npx", "vitest", "run", "--reporter=dot")
	cmd.Dir = filepath.Join(root, "web")
	out, err := cmd.CombinedOutput()
	t.Logf("vitest:\n%s", testkit.Tail(string(out), 6000))
	if err != nil {
		t.Fatalf("the console's unit tests failed: %v", err)
	}
}
