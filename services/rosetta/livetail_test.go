package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/changetail"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// tailEvent is the part of a live tail "change" event the test reads.
type tailEvent struct {
	Seq    uint64 `json:"seq"`
	Op     string `json:"op"`
	Schema string `json:"schema"`
	Table  string `json:"table"`
	Key    string `json:"key"`
	Values []struct {
		Column string `json:"column"`
		Value  string `json:"value"`
	} `json:"values"`
	Line string `json:"line"`
}

// TestLiveTailOverAPI runs `rosetta dev` with a pipeline of two tables, one
// of them named with a control character (as is one of its columns),
// follows GET /pipelines/{id}/tail as an operator and inserts rows at the
// source: the rows come back as "change" events with their values, the
// control characters escaped as \u0001 and \u0002 (the console shows the
// names as text). A viewer is refused (403), an unknown pipeline is 404
// and a table the pipeline does not replicate 422; closing the stream
// removes its consumer.
func TestLiveTailOverAPI(t *testing.T) {
	t.Parallel()
	bin, cleanup, err := testkit.BuildBinary(".", "rosetta", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	pg := testkit.StartPostgres(t)
	cfgDB := pg.CreateDatabase(t, "cfg")
	srcDB := pg.CreateDatabase(t, "src")
	dstDB := pg.CreateDatabase(t, "dst")
	pg.Exec(t, srcDB, "CREATE TABLE public.items (id bigint PRIMARY KEY, title text);"+
		"CREATE TABLE public.\"we\x01ird\" (id bigint PRIMARY KEY, \"co\x02l\" text)")

	httpAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	natsAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	dataDir := t.TempDir()
	dev := startDev(t, bin, append(os.Environ(),
		"ROSETTA_CONFIG_DSN="+pg.DSN(cfgDB),
		"ROSETTA_HTTP_ADDR="+httpAddr,
		"ROSETTA_EMBEDDED_NATS_ADDR="+natsAddr,
		"ROSETTA_NATS_URL=",
		"ROSETTA_LOG_FORMAT=text",
		"ROSETTA_SECRET_KEY=livetail-test-secret-key-0123456789",
		"ROSETTA_API_TOKEN="+testAPIToken,
		"ROSETTA_DATA_DIR="+dataDir,
		"ROSETTA_RECONCILE_INTERVAL=2s",
		"ROSETTA_SINK_BATCH_WAIT=50ms",
	), httpAddr)
	waitUntil := dev.waitUntil
	base := "http://" + httpAddr + "/api/v1"
	call := apiCaller(t, base)
	var src, dest, pipe struct {
		ID int64 `json:"id"`
	}
	call("POST", "/sources", map[string]any{"name": "shop", "host": pg.Host(), "port": pg.Port,
		"database": srcDB, "user": "postgres", "sslmode": "disable"}, &src)
	call("POST", "/destinations", map[string]any{"name": "warehouse", "type": "postgres", "config": map[string]any{
		"host": pg.Host(), "port": pg.Port, "database": dstDB, "user": "postgres", "sslmode": "disable"}}, &dest)
	call("POST", "/pipelines", map[string]any{"name": "shop", "source_id": src.ID,
		"destination_ids": []int64{dest.ID}, "tables": []string{"public.items", "public.we\x01ird"}}, &pipe)
	call("POST", fmt.Sprintf("/pipelines/%d/start", pipe.ID), nil, nil)
	var viewer struct {
		Token string `json:"token"`
	}
	call("POST", "/tokens", map[string]any{"name": "watcher", "role": "viewer"}, &viewer)

	tailPath := fmt.Sprintf("/pipelines/%d/tail", pipe.ID)
	open := func(token, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	status := func(token, path string) (int, string) {
		resp := open(token, path)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := status(viewer.Token, tailPath); code != http.StatusForbidden {
		t.Fatalf("a viewer's tail: %d %s, want 403", code, body)
	}
	if code, body := status(testAPIToken, "/pipelines/999999/tail"); code != http.StatusNotFound || !strings.Contains(body, "999999") {
		t.Fatalf("tail of an unknown pipeline: %d %s, want 404 naming it", code, body)
	}
	if code, body := status(testAPIToken, tailPath+"?table=public.nope"); code != http.StatusUnprocessableEntity || !strings.Contains(body, `"field":"table"`) {
		t.Fatalf("tail of a table outside the pipeline: %d %s, want 422 at field table", code, body)
	}

	// The stream exists once capture has started: until then the tail
	// answers 409.
	var resp *http.Response
	waitUntil("the tail answers 200", 90*time.Second, func() bool {
		r := open(testAPIToken, tailPath)
		if r.StatusCode == http.StatusOK {
			resp = r
			return true
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusConflict {
			t.Fatalf("tail: %d %s", r.StatusCode, b)
		}
		return false
	})
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	var mu sync.Mutex
	var events []tailEvent
	var frames []string
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(resp.Body)
		var event string
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			frames = append(frames, line)
			mu.Unlock()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "change":
				var ev tailEvent
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err == nil {
					mu.Lock()
					events = append(events, ev)
					mu.Unlock()
				}
			}
		}
	}()

	srcConn := pg.Connect(t, srcDB)
	ctx := context.Background()
	insert := func(id int) {
		for _, sql := range []string{"INSERT INTO public.items VALUES ($1, $2)", "INSERT INTO public.\"we\x01ird\" VALUES ($1, $2)"} {
			if _, err := srcConn.Exec(ctx, sql, id, fmt.Sprintf("row %d", id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The tail starts at new messages and its consumer may still be
	// being created when the first row commits: rows go in until both
	// tables' changes were seen.
	find := func(table, key string) *tailEvent {
		mu.Lock()
		defer mu.Unlock()
		for i := range events {
			if events[i].Table == table && events[i].Key == key {
				return &events[i]
			}
		}
		return nil
	}
	id := 1
	var items, weird *tailEvent
	waitUntil("inserted rows as tail events", 60*time.Second, func() bool {
		insert(id)
		id++
		for k := 1; k < id; k++ {
			if items, weird = find("items", fmt.Sprintf("id=%d", k)), find(`we\u0001ird`, fmt.Sprintf("id=%d", k)); items != nil && weird != nil {
				return true
			}
		}
		return false
	})
	if items.Op != "c" || items.Schema != "public" || len(items.Values) != 2 || items.Values[1].Column != "title" ||
		items.Values[1].Value != fmt.Sprintf(`"row %s"`, strings.TrimPrefix(items.Key, "id=")) {
		t.Fatalf("items event: %+v", *items)
	}
	if len(weird.Values) != 2 || weird.Values[1].Column != `co\u0002l` || !strings.Contains(weird.Line, `public.we\u0001ird`) {
		t.Fatalf("the control characters are not escaped: %+v", *weird)
	}
	mu.Lock()
	for _, f := range frames {
		if strings.ContainsAny(f, "\x01\x02") {
			t.Errorf("a raw control character reached the stream: %q", f)
		}
	}
	mu.Unlock()

	// Closing the stream ends the server's reader; JetStream then drops
	// the tail's consumer (changetail.InactiveThreshold), leaving the
	// pipeline's own.
	tap, err := natsx.TapOptions(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://"+natsAddr, tap...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if n := consumerCount(t, js, src.ID); n != 2 {
		t.Fatalf("%d consumers on the source's stream while tailing, want the pipeline's and the tail's", n)
	}
	resp.Body.Close()
	<-readDone
	waitUntil("the tail's consumer removed", changetail.InactiveThreshold+60*time.Second, func() bool {
		return consumerCount(t, js, src.ID) == 1
	})
}
