package api

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

func redisClient(t *testing.T, r *testkit.Redis) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func fxApp(c *client, addr string) *fx.App {
	s := settings.Default()
	s.HTTPAddr = addr
	return fx.New(
		fx.NopLogger,
		fx.Supply(&s, c.store, slog.New(slog.DiscardHandler)),
		fx.Provide(func() jetstream.JetStream { return c.f.js }),
		Module,
	)
}

func testModule(t *testing.T, c *client) {
	addr := "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	app := fxApp(c, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	resp, err := http.Get("http://" + addr + "/api/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health = %d", resp.StatusCode)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}

	// A taken port fails the start with a clear error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := fxApp(c, ln.Addr().String())
	err = taken.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "listen on "+ln.Addr().String()) {
		t.Fatalf("start on a taken port: err = %v", err)
	}
	_ = taken.Stop(ctx)
	var _ *configstore.Store = c.store
}
