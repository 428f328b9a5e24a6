// Package platform is the fx module every Rosetta service stands on: the
// logger, the config store (migrated on start), the NATS connection (to
// ROSETTA_NATS_URL, or to an embedded server when it is empty) and, when
// configured, the Redis client.
package platform

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/pkg/changetail"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/destquery"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/redisconn"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

// Module provides *slog.Logger is supplied by the caller (see NewLogger);
// this module provides the store, NATS, the process's metrics (see
// metrics.go), the WAL sample store, the registry of DuckDB files this
// process holds (pkg/destquery; the sinks fill it, the API reads through
// it) and, optionally, Redis.
func Module(s *settings.Settings) fx.Option {
	opts := []fx.Option{
		fx.Supply(s),
		fx.Provide(newStore, newNATS, newObservability, newMetrics, newWALStore, newQueryRegistry),
		fx.Invoke(applyMemoryLimit),
	}
	if s.RedisURL != "" {
		opts = append(opts, fx.Provide(newRedis))
	}
	return fx.Module("platform", opts...)
}

func newQueryRegistry(log *slog.Logger) *destquery.Registry {
	return destquery.NewRegistry(log.With("component", "destquery"))
}

// NewLogger builds the process logger from settings: JSON for production,
// text for `rosetta dev` unless ROSETTA_LOG_FORMAT says otherwise.
func NewLogger(s *settings.Settings) *slog.Logger { return newLogger(os.Stderr, s) }

func newLogger(w io.Writer, s *settings.Settings) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(s.LogFormat, "text") {
		// The text handler quotes any value with a control or format
		// character, escaping it.
		return slog.New(slog.NewTextHandler(w, opts))
	}
	// JSON escapes only C0 controls: DEL, C1 controls (CSI starts
	// terminal sequences) and bidi or zero-width characters from source
	// table names and values would reach whoever tails the log raw.
	opts.ReplaceAttr = escapeAttr
	return slog.New(slog.NewJSONHandler(w, opts))
}

// escapeAttr escapes what changetail.Escape escapes in string and error
// values (names and values from the source end up in both).
func escapeAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); changetail.Escape(s) != s {
			a.Value = slog.StringValue(changetail.Escape(s))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(changetail.Escape(err.Error()))
		}
	}
	return a
}

func newStore(lc fx.Lifecycle, s *settings.Settings, log *slog.Logger) (*configstore.Store, error) {
	box, err := secrets.NewBox(s.SecretKey, s.SecretKeyPrevious)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := configstore.Open(ctx, s.ConfigDSN, box)
	if err != nil {
		return nil, fmt.Errorf("open config db (%s): %w", settings.EnvConfigDSN, err)
	}
	// Migrations are applied on every start; they are idempotent and
	// serialized by an advisory lock, so several services may start at once.
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate config db: %w", err)
	}
	log.Debug("config db ready")
	lc.Append(fx.StopHook(st.Close))
	return st, nil
}

// NATSResult carries the connection and its JetStream context, and with
// the embedded server a second connection as its tap user.
type NATSResult struct {
	fx.Out
	Conn *nats.Conn
	JS   jetstream.JetStream
	// Tap is nil with an external NATS (ROSETTA_NATS_URL), whose one set
	// of credentials the process uses for everything.
	Tap *natsx.Tap
}

func newNATS(lc fx.Lifecycle, s *settings.Settings, log *slog.Logger) (NATSResult, error) {
	url := s.NATSURL
	var emb *natsx.Embedded
	var connectOpts []nats.Option
	var tapUser nats.Option
	if url != "" {
		auth, err := natsx.AuthOptions(s.NATSAuth)
		if err != nil {
			return NATSResult{}, fmt.Errorf("nats client settings: %w", err)
		}
		connectOpts = auth
	}
	if url == "" {
		host, port, err := splitAddr(s.EmbeddedNATSAddr)
		if err != nil {
			return NATSResult{}, fmt.Errorf("%s: %w", settings.EnvNATSListen, err)
		}
		ecfg := natsx.EmbeddedConfig{Dir: filepath.Join(s.DataDir, "nats"), Host: host, Port: port}
		if ecfg.AtRest, err = embeddedAtRest(s); err != nil {
			return NATSResult{}, fmt.Errorf("embedded nats: %w", err)
		}
		if s.EmbeddedNATSSync == "always" {
			ecfg.SyncAlways = true
		} else {
			ecfg.SyncInterval, _ = time.ParseDuration(s.EmbeddedNATSSync) // checked by Validate
			if d := s.ConfirmDelay(); d < ecfg.SyncInterval {
				log.Warn("capture confirms WAL sooner than the embedded NATS fsyncs: a power loss could lose changes the source already released",
					"fsync_interval", ecfg.SyncInterval, "confirm_delay", d, "settings", settings.EnvNATSSync+", "+settings.EnvConfirm)
			}
		}
		// The embedded server admits only the generated users: the
		// services' own and the tap's (rosetta tail), kept in the data dir.
		creds, err := natsx.LoadOrCreateDevCredentials(s.DataDir)
		if err != nil {
			return NATSResult{}, fmt.Errorf("embedded nats: %w", err)
		}
		ecfg.Users = creds.Users()
		connectOpts = append(connectOpts, creds.Services.Option())
		tapUser = creds.Tap.Option()
		if s.EmbeddedNATSTLSCert != "" {
			cert, err := tls.LoadX509KeyPair(s.EmbeddedNATSTLSCert, s.EmbeddedNATSTLSKey)
			if err != nil {
				return NATSResult{}, fmt.Errorf("embedded nats TLS (%s, %s): %w", settings.EnvNATSTLSCert, settings.EnvNATSTLSKey, err)
			}
			ecfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		emb, err = natsx.StartEmbedded(ecfg, log)
		if err == nil {
			// The process's own connection stays inside the process: no
			// socket, so no system calls per message (a single-row
			// transaction crosses it several times: publish, its ack,
			// delivery, the sink's ack), and no certificate to check
			// against a host name; TLS protects the listener that other
			// programs reach.
			connectOpts = append(connectOpts, nats.InProcessServer(emb.Server()))
		}
		if err != nil {
			return NATSResult{}, fmt.Errorf("embedded nats on %s (set %s to another address, or %s to use a NATS server): %w",
				s.EmbeddedNATSAddr, settings.EnvNATSListen, settings.EnvNATSURL, err)
		}
		url = emb.ClientURL()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, js, err := natsx.ConnectWith(ctx, url, "rosetta", log,
		natsx.Liveness{PingInterval: s.NATSPingInterval, MaxPingsOut: s.NATSMaxPingsOut}, connectOpts...)
	if err != nil {
		if emb != nil {
			emb.Shutdown()
		}
		return NATSResult{}, err
	}
	var tap *natsx.Tap
	var tapConn *nats.Conn
	if emb != nil {
		// What reads changes for people (the API's live tail) connects
		// as the tap user, in-process, with the rights of `rosetta tail`.
		tapConn, tap, err = natsx.ConnectTap(ctx, url, log, tapUser, nats.InProcessServer(emb.Server()))
		if err != nil {
			nc.Close()
			emb.Shutdown()
			return NATSResult{}, err
		}
	}
	// Registered before any service's hooks, so it stops after them: the
	// services drain (acks, final confirmations) while NATS is still up.
	lc.Append(fx.StopHook(func() {
		if tapConn != nil {
			tapConn.Close()
		}
		_ = nc.Drain()
		nc.Close()
		if emb != nil {
			emb.Shutdown()
		}
	}))
	return NATSResult{Conn: nc, JS: js, Tap: tap}, nil
}

// newRedis connects with the ACL user and TLS settings; a refusal the
// settings must fix stops the start with what to fix, an unreachable
// server only a warning (redisconn.Open).
func newRedis(lc fx.Lifecycle, s *settings.Settings, log *slog.Logger) (*redis.Client, error) {
	c, err := redisconn.Open(context.Background(), s.RedisURL, s.RedisAuth, log)
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(c.Close))
	return c, nil
}

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: want host:port: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: bad port: %w", addr, err)
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}
