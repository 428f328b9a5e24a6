// Command rosetta runs Rosetta's services. Each subcommand runs one service
// (api, capture, sink); `rosetta dev` runs all of them in one process with an
// embedded NATS server. They are the same fx modules either way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/services/api"
	"github.com/rosettacdc/rosetta/services/backfill"
	"github.com/rosettacdc/rosetta/services/capture"
	"github.com/rosettacdc/rosetta/services/platform"
	"github.com/rosettacdc/rosetta/services/sink"
	"github.com/rosettacdc/rosetta/services/sink/drivers/builtin"
	"github.com/rosettacdc/rosetta/web"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `rosetta — real-time PostgreSQL change data capture

Usage:
  rosetta dev        run api, capture, sink and backfill in one process, embedded NATS
  rosetta api        run the REST API
  rosetta capture    run capture (PostgreSQL -> JetStream)
  rosetta sink       run sinks (JetStream -> destinations); --destinations 3,7
                     runs only those destinations' sinks
  rosetta backfill   run snapshot and backfill jobs (PostgreSQL -> JetStream)
  rosetta migrate    apply config DB migrations and exit
  rosetta secrets rotate
                     re-seal stored secrets under a new ROSETTA_SECRET_KEY
  rosetta tail <source_id>[.<schema>.<table>]
                     print live changes (rosetta tail -h)
  rosetta token create|list|revoke
                     manage API tokens (rosetta token -h)
  rosetta verify <pipeline>
                     compare a pipeline's tables at source and destinations
                     (rosetta verify -h)
  rosetta check-destination <destination>
                     check a Snowflake destination live: login, stage,
                     warehouse, a round trip of every type
                     (rosetta check-destination -h)
  rosetta version    print the version

Configuration comes from the environment (flags override):
  ROSETTA_CONFIG_DSN          config database URL
  ROSETTA_HTTP_ADDR           API listen address (default 127.0.0.1:8080)
  ROSETTA_NATS_URL            NATS server; empty runs an embedded one
  ROSETTA_EMBEDDED_NATS_ADDR  embedded NATS listen address (default 127.0.0.1:4223)
  ROSETTA_REDIS_URL           Redis for dead-letter queues (optional; rediss:// for TLS)
  ROSETTA_REDIS_USER          Redis ACL user, with ROSETTA_REDIS_PASSWORD(_FILE)
  ROSETTA_REDIS_TLS_CA        CA of the Redis server's certificate (_CERT/_KEY: client's)
  ROSETTA_DLQ_MAX_ENTRIES     dead letters kept per stream (default 100000, 0: all)
  ROSETTA_DLQ_MAX_AGE         age after which dead letters go (default 30d, 0: never)
  ROSETTA_DATA_DIR            data directory (default ./.rosetta)
  ROSETTA_SECRET_KEY          key encrypting stored secrets (required, except dev)
  ROSETTA_SECRET_KEY_PREVIOUS the key before a rotation (rosetta secrets rotate)
  ROSETTA_JETSTREAM_ENCRYPTION  embedded JetStream files encrypted: on (default) or off
  ROSETTA_JETSTREAM_KEY       their key (default: derived from ROSETTA_SECRET_KEY)
  ROSETTA_JETSTREAM_CIPHER    chacha (default) or aes
  ROSETTA_LOG_LEVEL           debug, info, warn, error
  ROSETTA_LOG_FORMAT          json or text
  ROSETTA_API_TOKEN           bootstrap admin API token (dev generates one)
  ROSETTA_API_TOKEN_FILE      file holding it, instead of ROSETTA_API_TOKEN
  ROSETTA_ALLOWED_ORIGINS     web origins allowed to call the API (CORS)
  ROSETTA_METRICS_ADDR        extra /metrics listener (the API serves /metrics too)
  ROSETTA_WAL_MONITOR_INTERVAL  how often capture checks sources' WAL (default 60s)
  ROSETTA_LAG_THRESHOLD       lag above which a destination is LAGGING (default 60s)
  ROSETTA_SINK_DESTINATIONS   destinations whose sinks rosetta sink runs (default all)
  ROSETTA_STREAM_REPLICAS     replicas of every stream and consumer (default 1)
  ROSETTA_HEALTH_ADDR         capture's and sink's /livez and /readyz listener
Run 'rosetta <command> -h' for the flags of a command.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errDiffer) {
			os.Exit(3)
		}
		fmt.Fprintln(os.Stderr, "rosetta:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "tail":
		return runTail(rest, stdout, stderr)
	case "secrets":
		return runSecrets(rest, stdout, stderr)
	case "token":
		return runToken(rest, stdout, stderr)
	case "verify":
		return runVerify(rest, stdout, stderr)
	case "check-destination":
		return runCheckDestination(rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "rosetta", version)
		return nil
	case "dev", "api", "capture", "sink", "backfill", "migrate":
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}

	s, err := settings.Load()
	if err != nil {
		return err
	}
	if cmd == "dev" {
		s.Dev = true
		if os.Getenv(settings.EnvLogFormat) == "" {
			s.LogFormat = "text"
		}
	}
	fs := flag.NewFlagSet("rosetta "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// URLs that may hold a password: -h shows them redacted (urlFlag).
	fs.Var(urlFlag{&s.ConfigDSN}, "config-dsn", "config database URL ("+settings.EnvConfigDSN+")")
	fs.StringVar(&s.HTTPAddr, "http-addr", s.HTTPAddr, "API listen address ("+settings.EnvHTTPAddr+")")
	fs.Var(urlFlag{&s.NATSURL}, "nats-url", "NATS URL, empty for embedded ("+settings.EnvNATSURL+")")
	// No default shown: the URL may hold a password, and -h prints
	// defaults.
	var redisURL string
	fs.StringVar(&redisURL, "redis-url", "", "Redis URL, rediss:// for TLS (default "+settings.EnvRedisURL+")")
	fs.StringVar(&s.DataDir, "data-dir", s.DataDir, "data directory ("+settings.EnvDataDir+")")
	fs.StringVar(&s.LogLevel, "log-level", s.LogLevel, "log level ("+settings.EnvLogLevel+")")
	var destinations string
	if cmd == "sink" {
		fs.StringVar(&destinations, "destinations", "", "run only these destinations' sinks, ids separated by commas like 3,7; empty runs all ("+settings.EnvSinkDestinations+")")
	}
	var lagThreshold time.Duration
	fs.DurationVar(&lagThreshold, "lag-threshold", 0, "lag above which a destination is LAGGING ("+settings.EnvLagThreshold+", default 60s)")
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if redisURL != "" {
		s.RedisURL = redisURL
	}
	if destinations != "" {
		ids, err := settings.ParseDestinationIDs(destinations)
		if err != nil {
			return fmt.Errorf("--destinations: %w", err)
		}
		s.SinkDestinations = ids
	}
	if lagThreshold < 0 {
		return errors.New("--lag-threshold must not be negative")
	}
	usedDevKey, err := s.Validate()
	if err != nil {
		return err
	}
	log := platform.NewLogger(&s)
	if usedDevKey {
		log.Warn("ROSETTA_SECRET_KEY is not set: using the public development key; secrets in this config DB are NOT protected. Set ROSETTA_SECRET_KEY outside development.")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if cmd == "migrate" {
		return migrate(ctx, &s, log)
	}
	// Only the API uses access settings; other services ignore them.
	var access settings.Access
	if cmd == "dev" || cmd == "api" {
		if access, err = settings.LoadAccess(); err != nil {
			return err
		}
	}
	var devTokenPath string
	if cmd == "dev" && access.APIToken == "" {
		access.APIToken, devTokenPath, _, err = devToken(s.DataDir)
		if err != nil {
			return err
		}
	}

	consoleFiles, consoleBuilt, err := web.Console()
	if err != nil {
		return err
	}
	if !consoleBuilt && (cmd == "dev" || cmd == "api") {
		log.Warn("the web console is not built into this binary: run make build; the API works without it")
	}

	types := builtin.Types()
	opts := []fx.Option{
		fx.Supply(log, access),
		fx.Supply(&api.Console{Files: consoleFiles, Built: consoleBuilt}),
		platform.Module(&s),
		fx.Provide(
			fx.Annotate(asStore, fx.As(new(capture.ConfigStore))),
			fx.Annotate(asStore, fx.As(new(sink.ConfigStore))),
		),
		// The destination types, listed once: the API validates, lists and
		// checks destinations by them (log in, SELECT 1; postgres is
		// checked by the API itself), the sink opens their drivers.
		fx.Supply(types, liveCheckers(types, log)),
		fx.WithLogger(func() fxevent.Logger {
			if s.LogLevel == "debug" {
				return &fxevent.SlogLogger{Logger: log}
			}
			return fxevent.NopLogger
		}),
	}
	if lagThreshold > 0 {
		// The flag overrides ROSETTA_LAG_THRESHOLD, which platform loads
		// with the other observability settings.
		opts = append(opts, fx.Decorate(func(o settings.Observability) settings.Observability {
			o.LagThreshold = lagThreshold
			return o
		}))
	}
	var devStore *configstore.Store
	var devNATS *nats.Conn
	switch cmd {
	case "dev":
		opts = append(opts, api.Module, capture.Module, sink.Module, backfill.Module, fx.Populate(&devStore, &devNATS))
	case "api":
		opts = append(opts, api.Module)
	case "capture":
		opts = append(opts, capture.Module, platform.HealthModule)
	case "backfill":
		opts = append(opts, backfill.Module)
	case "sink":
		opts = append(opts, sink.Module, platform.HealthModule)
	}
	app := fx.New(opts...)
	if err := app.Err(); err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		return fmt.Errorf("start %s: %w", cmd, err)
	}
	log.Info("rosetta running", "command", cmd, "api", s.HTTPAddr, "version", version)
	stopProgress := func() {}
	if cmd == "dev" {
		printDevStartup(stderr, &s, devNATS, devTokenPath, access.TLSCertFile != "")
		pctx, cancelProgress := context.WithCancel(ctx)
		progressDone := make(chan struct{})
		// Owned here: stopped and waited for before the app (and the
		// store it reads) stops.
		go func() {
			defer close(progressDone)
			newDevProgress(devStore, stderr).run(pctx, 2*time.Second)
		}()
		stopProgress = func() { cancelProgress(); <-progressDone }
	}
	<-ctx.Done()
	stopProgress()
	log.Info("shutting down: draining in-flight work")
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelStop()
	if err := app.Stop(stopCtx); err != nil {
		return fmt.Errorf("stop %s: %w", cmd, err)
	}
	log.Info("stopped")
	return nil
}

func asStore(s *configstore.Store) *configstore.Store { return s }

func migrate(ctx context.Context, s *settings.Settings, log *slog.Logger) error {
	box, err := secrets.NewBox(s.SecretKey, s.SecretKeyPrevious)
	if err != nil {
		return err
	}
	st, err := configstore.Open(ctx, s.ConfigDSN, box)
	if err != nil {
		return fmt.Errorf("open config db: %w", err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	log.Info("config db migrated")
	return nil
}

// printDevStartup says what `rosetta dev` started, once it is up.
func printDevStartup(w io.Writer, s *settings.Settings, nc *nats.Conn, tokenPath string, https bool) {
	scheme := "http"
	if https {
		scheme = "https"
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, progressPrefix+format+"\n", args...) }
	p("config DB migrated (%s)", redactDSN(s.ConfigDSN))
	if s.NATSURL == "" {
		p("NATS up at %s (embedded; JetStream stored in %s)", nc.ConnectedUrl(), filepath.Join(s.DataDir, "nats"))
	} else {
		p("NATS connected at %s", nc.ConnectedUrl())
	}
	p("API listening on %s://%s/api/v1", scheme, s.HTTPAddr)
	if tokenPath != "" {
		p("admin API token in %s; use it with:", tokenPath)
		p("  export ROSETTA_API_TOKEN=$(cat %s)", tokenPath)
		p("  curl -H \"Authorization: Bearer $ROSETTA_API_TOKEN\" %s://%s/api/v1/whoami", scheme, s.HTTPAddr)
	} else {
		p("API token: the one in %s (send it as Authorization: Bearer <token>)", settings.EnvAPIToken)
	}
	p("console at %s://%s/", scheme, s.HTTPAddr)
	p("capture, sinks and the backfill worker are running; progress follows here")
}

// redactDSN drops the password from a URL-form DSN; other forms are not
// printed.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		return "DSN set by " + settings.EnvConfigDSN
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	u.RawQuery = ""
	return u.String()
}
