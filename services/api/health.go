package api

import (
	"context"
	"sync"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
)

// livenessBody is GET /health: the process serves requests. It says
// nothing about dependencies, whose errors (hosts, addresses) are not for
// unauthenticated callers; GET /ready has them.
type livenessBody struct {
	Status string `json:"status"`
}

func (s *Server) health(c *fiber.Ctx) error {
	return c.JSON(livenessBody{Status: "ok"})
}

// healthBody is GET /ready: "ok" when every configured dependency
// answers, "degraded" (HTTP 503) otherwise.
type healthBody struct {
	Status string                 `json:"status"`
	Checks map[string]checkResult `json:"checks"`
}

type checkResult struct {
	Status string `json:"status"` // ok, error, disabled
	Error  string `json:"error,omitempty"`
}

func (s *Server) ready(c *fiber.Ctx) error {
	checks := map[string]func(context.Context) error{
		"config_db": s.store.Ping,
		"nats": func(ctx context.Context) error {
			_, err := s.js.AccountInfo(ctx)
			return err
		},
	}
	if s.redis != nil {
		checks["redis"] = s.redis.Ping
	}
	body := healthBody{Status: "ok", Checks: map[string]checkResult{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, check := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.HealthTimeout)
			defer cancel()
			r := checkResult{Status: "ok"}
			if err := check(ctx); err != nil {
				r = checkResult{Status: "error", Error: err.Error()}
			}
			mu.Lock()
			body.Checks[name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	if s.redis == nil {
		body.Checks["redis"] = checkResult{Status: "disabled"}
	}
	for _, r := range body.Checks {
		if r.Status == "error" {
			body.Status = "degraded"
		}
	}
	if body.Status != "ok" {
		return c.Status(fiber.StatusServiceUnavailable).JSON(body)
	}
	return c.JSON(body)
}

// RedisPinger adapts a go-redis client to Pinger.
func RedisPinger(c *redis.Client) Pinger { return redisPinger{c} }

type redisPinger struct{ c *redis.Client }

func (r redisPinger) Ping(ctx context.Context) error { return r.c.Ping(ctx).Err() }
