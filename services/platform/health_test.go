package platform

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

// TestHealthHandler: liveness answers whatever the dependencies do;
// readiness follows the NATS connection and the config database.
func TestHealthHandler(t *testing.T) {
	n := testkit.StartNATS(t)
	nc, _ := n.Connect(t)
	var dbErr error
	db := pingFunc(func(context.Context) error { return dbErr })
	srv := httptest.NewServer(HealthHandler(nc, db, time.Second))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	check := func(step, path string, wantCode int, wantBody string) {
		t.Helper()
		code, body := get(path)
		if code != wantCode || !strings.Contains(body, wantBody) {
			t.Errorf("%s: GET %s = %d %q, want %d containing %q", step, path, code, body, wantCode, wantBody)
		}
	}
	check("all up", LivenessPath, 200, "ok")
	check("all up", ReadinessPath, 200, "ok")

	dbErr = errors.New("connection refused")
	check("config db down", LivenessPath, 200, "ok")
	check("config db down", ReadinessPath, 503, "config db: not answering")

	dbErr = nil
	nc.Close()
	check("nats closed", LivenessPath, 200, "ok")
	check("nats closed", ReadinessPath, 503, "nats: CLOSED")
	if code, _ := get("/other"); code != http.StatusNotFound {
		t.Errorf("GET /other = %d, want 404", code)
	}
}
