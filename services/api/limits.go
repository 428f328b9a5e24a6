package api

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"

	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// connectsOut are the routes that open connections to sources and
// destinations (production databases, a Snowflake warehouse) to check a
// request or answer it. Each is limited per token and all together
// (outboundLimiter), so a script or a stolen token cannot make Rosetta
// flood a production database with logins. DuckDB queries are not among
// them: they read a local file through the process holding it, bounded by
// their own timeout and row limit, and tools poll them (bin/duckquery).
var connectsOut = map[string]bool{
	"POST /api/v1/sources":                     true,
	"PUT /api/v1/sources/:id":                  true,
	"GET /api/v1/sources/:id/tables":           true,
	"POST /api/v1/destinations/check":          true,
	"POST /api/v1/destinations":                true,
	"PUT /api/v1/destinations/:id":             true,
	"POST /api/v1/destinations/:id/check-live": true,
	"POST /api/v1/pipelines":                   true,
	"PUT /api/v1/pipelines/:id":                true,
	"POST /api/v1/pipelines/:id/verify":        true,
}

// OutboundLimits bound the routes in connectsOut.
type OutboundLimits struct {
	// Concurrent is how many such requests run at once, over all tokens;
	// one more is answered 429 at once rather than queued, since its
	// client's timeout would run out in the queue.
	Concurrent int
	// PerMinute and Burst are each token's rate: Burst requests at once,
	// then PerMinute a minute.
	PerMinute int
	Burst     int
}

// DefaultOutboundLimits: 8 at once; per token a burst of 30, then 60 a
// minute — above what an admin in the console or a deploy script needs,
// below what would trouble a database's connection slots.
func DefaultOutboundLimits() OutboundLimits {
	return OutboundLimits{Concurrent: 8, PerMinute: 60, Burst: 30}
}

// outboundLimiter enforces OutboundLimits.
type outboundLimiter struct {
	cfg OutboundLimits
	sem chan struct{}

	mu       sync.Mutex
	perToken map[int64]*tokenRate
}

type tokenRate struct {
	lim      *rate.Limiter
	lastUsed time.Time
}

func newOutboundLimiter(cfg OutboundLimits) *outboundLimiter {
	d := DefaultOutboundLimits()
	if cfg.Concurrent <= 0 {
		cfg.Concurrent = d.Concurrent
	}
	if cfg.PerMinute <= 0 {
		cfg.PerMinute = d.PerMinute
	}
	if cfg.Burst <= 0 {
		cfg.Burst = d.Burst
	}
	return &outboundLimiter{cfg: cfg, sem: make(chan struct{}, cfg.Concurrent), perToken: map[int64]*tokenRate{}}
}

// reserve takes one request of token id from its rate, or says how long
// to wait for one.
func (l *outboundLimiter) reserve(id int64, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tr := l.perToken[id]
	if tr == nil {
		// Forget tokens idle long enough to have refilled: the map stays
		// as small as the set of recently active tokens.
		for k, v := range l.perToken {
			if now.Sub(v.lastUsed) > 10*time.Minute {
				delete(l.perToken, k)
			}
		}
		tr = &tokenRate{lim: rate.NewLimiter(rate.Limit(float64(l.cfg.PerMinute)/60), l.cfg.Burst)}
		l.perToken[id] = tr
	}
	tr.lastUsed = now
	r := tr.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limitOutbound is the middleware of the routes in connectsOut; it runs
// after authentication, so every request has a token.
func (s *Server) limitOutbound(c *fiber.Ctx) error {
	tok, _ := c.Locals(tokenLocal).(configstore.Token)
	if ok, wait := s.outbound.reserve(tok.ID, time.Now()); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		return &apiError{status: fiber.StatusTooManyRequests,
			msg: "too many requests that connect to sources or destinations from this token: retry in " + strconv.Itoa(secs) + "s"}
	}
	select {
	case s.outbound.sem <- struct{}{}:
		defer func() { <-s.outbound.sem }()
		return c.Next()
	default:
		c.Set(fiber.HeaderRetryAfter, "1")
		return &apiError{status: fiber.StatusTooManyRequests,
			msg: strconv.Itoa(s.outbound.cfg.Concurrent) + " requests that connect to sources or destinations are already running: retry in 1s"}
	}
}
