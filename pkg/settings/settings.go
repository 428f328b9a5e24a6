// Package settings is the one place Rosetta's environment variables are
// named, defaulted and validated. Every service takes a *Settings; flags on
// the command line may override fields after Load.
package settings

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Environment variable names.
const (
	EnvConfigDSN   = "ROSETTA_CONFIG_DSN"
	EnvHTTPAddr    = "ROSETTA_HTTP_ADDR"
	EnvNATSURL     = "ROSETTA_NATS_URL"
	EnvRedisURL    = "ROSETTA_REDIS_URL"
	EnvDataDir     = "ROSETTA_DATA_DIR"
	EnvSecretKey   = "ROSETTA_SECRET_KEY"
	EnvSecretPrev  = "ROSETTA_SECRET_KEY_PREVIOUS"
	EnvLogLevel    = "ROSETTA_LOG_LEVEL"
	EnvLogFormat   = "ROSETTA_LOG_FORMAT"
	EnvReconcile   = "ROSETTA_RECONCILE_INTERVAL"
	EnvStreamBytes = "ROSETTA_STREAM_MAX_BYTES"
	EnvDupWindow   = "ROSETTA_STREAM_DUPLICATE_WINDOW"
	EnvBatchSize   = "ROSETTA_SINK_BATCH_SIZE"
	EnvBatchWait   = "ROSETTA_SINK_BATCH_WAIT"
	EnvNATSListen  = "ROSETTA_EMBEDDED_NATS_ADDR"
	EnvNATSSync    = "ROSETTA_EMBEDDED_NATS_SYNC"
	EnvNATSTLSCert = "ROSETTA_EMBEDDED_NATS_TLS_CERT"
	EnvNATSTLSKey  = "ROSETTA_EMBEDDED_NATS_TLS_KEY"
	EnvConfirm     = "ROSETTA_CAPTURE_CONFIRM_DELAY"
	EnvNATSPing    = "ROSETTA_NATS_PING_INTERVAL"
	EnvNATSPings   = "ROSETTA_NATS_MAX_PINGS_OUT"
	EnvRecvTimeout = "ROSETTA_CAPTURE_RECEIVE_TIMEOUT"
	EnvApplyTime   = "ROSETTA_SINK_APPLY_TIMEOUT"
	EnvStreaming   = "ROSETTA_CAPTURE_STREAMING"
	EnvSpoolDir    = "ROSETTA_CAPTURE_SPOOL_DIR"
	EnvRewriteFill = "ROSETTA_CAPTURE_BACKFILL_ON_REWRITE"
)

// DevSecretKey encrypts secrets under `rosetta dev` when ROSETTA_SECRET_KEY
// is unset. It is public, so anything it encrypted is readable by anyone
// with the config DB; services other than dev refuse to start without a key.
const DevSecretKey = "rosetta-dev-insecure-key-change-me"

// Settings configures every Rosetta service.
type Settings struct {
	// ConfigDSN is the config database (PostgreSQL).
	ConfigDSN string
	// HTTPAddr is where the REST API listens.
	HTTPAddr string
	// NATSURL is the NATS server; empty runs an embedded server with
	// JetStream stored under DataDir/nats.
	NATSURL string
	// NATSAuth is how the services authenticate to the NATS of NATSURL
	// (natsauth.go); the embedded server uses generated users instead.
	NATSAuth NATSAuth
	// EmbeddedNATSAddr is where the embedded NATS server listens, so that
	// `rosetta tail` and other programs can tap the stream. Port 0 picks a
	// free port. The default avoids 4222, where a system NATS often runs.
	EmbeddedNATSAddr string
	// EmbeddedNATSTLSCert and EmbeddedNATSTLSKey are PEM files: with them
	// the embedded server accepts only TLS clients. Required when
	// EmbeddedNATSAddr is not a loopback address.
	EmbeddedNATSTLSCert, EmbeddedNATSTLSKey string
	// EmbeddedNATSSync is how the embedded JetStream fsyncs: a duration
	// between fsyncs (default 1s), or "always" to fsync every message before
	// acknowledging it (about 6x slower here). Either way capture confirms
	// WAL to the source only for changes that are on disk (see
	// CaptureConfirmDelay).
	EmbeddedNATSSync string
	// CaptureConfirmDelay is how long capture waits after JetStream
	// acknowledged a transaction before confirming its WAL to the source.
	// Negative (the default) means automatic: one embedded fsync interval
	// plus 1s with the embedded server, 0 with "always" or an external NATS
	// (set it to the server's sync_interval plus a margin when a single NATS
	// server fsyncs on an interval).
	CaptureConfirmDelay time.Duration
	// RedisURL is the Redis holding dead-letter queues; empty disables them.
	RedisURL string
	// RedisAuth is the ACL user and TLS for RedisURL (redisauth.go).
	RedisAuth RedisAuth
	// DLQRetention bounds the dead-letter streams (dlqretention.go).
	DLQRetention
	// DataDir holds embedded NATS storage and local destination files.
	DataDir string
	// SecretKey encrypts stored passwords and keys (AES-256-GCM, key derived
	// with SHA-256 from this string). At least 16 characters.
	SecretKey string
	// SecretKeyPrevious is the key being rotated away from: values sealed
	// under it still open, new ones are sealed under SecretKey, and
	// `rosetta secrets rotate` re-seals the rest. Empty outside a rotation.
	SecretKeyPrevious string
	// Dev is set by `rosetta dev`: allows the dev secret key, with a
	// warning, as long as every listener is on loopback.
	Dev bool
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel  string
	LogFormat string
	// ReconcileInterval is how often services re-read the config DB even
	// without a config event.
	ReconcileInterval time.Duration
	// StreamMaxBytes bounds each source's stream. When full, capture stops
	// confirming WAL to the source instead of JetStream discarding changes.
	StreamMaxBytes int64
	// StreamDuplicateWindow is how long each source's stream remembers a
	// change's Nats-Msg-Id to drop it when capture publishes it again
	// after a restart; 0 (the default) means automatic, see
	// DuplicateWindow.
	StreamDuplicateWindow time.Duration
	// SinkBatchSize and SinkBatchWait bound one applied batch; the size
	// counts changes (sinkrunner.Config.BatchSize).
	SinkBatchSize int
	SinkBatchWait time.Duration
	// NATSPingInterval and NATSMaxPingsOut detect a dead (half-open)
	// connection to NATS: after NATSMaxPingsOut unanswered pings, one every
	// NATSPingInterval, the client reconnects (about 15s with 5s and 2).
	NATSPingInterval time.Duration
	NATSMaxPingsOut  int
	// CaptureReceiveTimeout is how long capture's replication connection
	// may stay silent (capture asks the source for a keepalive every 10s)
	// before capture drops it as dead and reconnects.
	CaptureReceiveTimeout time.Duration
	// CaptureStreaming lets sources that have it (PostgreSQL 14+) stream
	// large transactions to capture while they run (pgoutput protocol 2);
	// capture spools them to CaptureSpoolDir and publishes them at their
	// commit. "on" (the default) or "off".
	CaptureStreaming bool
	// CaptureSpoolDir is where capture spools streamed transactions until
	// they commit; empty is the system's temporary directory.
	CaptureSpoolDir string
	// CaptureBackfillOnRewrite makes capture create a backfill job of a
	// table when a column was added to it with values for its existing
	// rows that logical replication never sends (a volatile default, an
	// identity column: the table was rewritten). "on" (the default) or
	// "off", which only logs a warning.
	CaptureBackfillOnRewrite bool
	// SinkApplyTimeout bounds one batch's apply at a destination; a stalled
	// destination connection fails the apply after it, and the batch is
	// retried on a new connection.
	SinkApplyTimeout time.Duration
	// Scale holds the settings of a deployment over several processes
	// (scale.go).
	Scale
	// AtRest holds the embedded JetStream's encryption (atrest.go).
	AtRest
}

// Default returns the settings used when nothing is set: everything on
// localhost, data under ./.rosetta.
func Default() Settings {
	return Settings{
		ConfigDSN:           "postgres://postgres@127.0.0.1:5432/rosetta?sslmode=disable",
		HTTPAddr:            "127.0.0.1:8080",
		EmbeddedNATSAddr:    "127.0.0.1:4223",
		EmbeddedNATSSync:    "1s",
		CaptureConfirmDelay: -1,
		DataDir:             ".rosetta",
		LogLevel:            "info",
		LogFormat:           "json",
		ReconcileInterval:   30 * time.Second,
		StreamMaxBytes:      1 << 30,
		SinkBatchSize:       1000,
		SinkBatchWait:       20 * time.Millisecond,
		NATSPingInterval:    5 * time.Second,
		NATSMaxPingsOut:     2,
		// Three of capture's 10s keepalive requests unanswered.
		CaptureReceiveTimeout: 30 * time.Second,
		SinkApplyTimeout:      2 * time.Minute,
		CaptureStreaming:      true,
		// A rewrite's values reach destinations without the user noticing.
		CaptureBackfillOnRewrite: true,
		Scale:                    DefaultScale(),
		AtRest:                   DefaultAtRest(),
		DLQRetention:             DefaultDLQRetention(),
	}
}

// secretEnv lists the variables that may hold a secret: each can be given
// as NAME_FILE, the path of a file holding the value (a mounted Secret), so
// that it never appears in the environment or in a process listing.
var secretEnv = []string{EnvSecretKey, EnvSecretPrev, EnvConfigDSN, EnvNATSURL, EnvRedisURL,
	EnvNATSNKeySeed, EnvNATSPassword, EnvNATSToken, EnvRedisPassword, EnvJSKey, EnvJSKeyPrev}

// lookupEnv reads name, or for a secret variable name_FILE; setting both is
// an error, since which one wins would be a guess.
func lookupEnv(name string) (string, bool, error) {
	v, ok := os.LookupEnv(name)
	if !slices.Contains(secretEnv, name) {
		return v, ok, nil
	}
	path, fromFile := os.LookupEnv(name + "_FILE")
	if !fromFile {
		return v, ok, nil
	}
	if ok {
		return "", false, fmt.Errorf("%s and %s_FILE are both set: set one", name, name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("%s_FILE: %w", name, err)
	}
	// A file written by an editor or `echo` ends in a newline that is not
	// part of the secret.
	return strings.TrimRight(string(b), "\r\n"), true, nil
}

// Load reads the environment over Default.
func Load() (Settings, error) {
	s := Default()
	var errs []error
	str := func(name string, dst *string) {
		v, ok, err := lookupEnv(name)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if ok {
			*dst = v
		}
	}
	str(EnvConfigDSN, &s.ConfigDSN)
	str(EnvHTTPAddr, &s.HTTPAddr)
	str(EnvNATSURL, &s.NATSURL)
	if a, err := loadNATSAuth(); err != nil {
		errs = append(errs, err)
	} else {
		s.NATSAuth = a
	}
	str(EnvRedisURL, &s.RedisURL)
	if a, err := loadRedisAuth(); err != nil {
		errs = append(errs, err)
	} else {
		s.RedisAuth = a
	}
	str(EnvNATSListen, &s.EmbeddedNATSAddr)
	str(EnvNATSSync, &s.EmbeddedNATSSync)
	str(EnvNATSTLSCert, &s.EmbeddedNATSTLSCert)
	str(EnvNATSTLSKey, &s.EmbeddedNATSTLSKey)
	str(EnvDataDir, &s.DataDir)
	str(EnvSecretKey, &s.SecretKey)
	str(EnvSecretPrev, &s.SecretKeyPrevious)
	str(EnvLogLevel, &s.LogLevel)
	str(EnvLogFormat, &s.LogFormat)
	str(EnvSpoolDir, &s.CaptureSpoolDir)
	onOff := func(env string, dst *bool) {
		switch v := os.Getenv(env); v {
		case "":
		case "on", "true", "1":
			*dst = true
		case "off", "false", "0":
			*dst = false
		default:
			errs = append(errs, fmt.Errorf("%s=%q: want on or off", env, v))
		}
	}
	onOff(EnvStreaming, &s.CaptureStreaming)
	onOff(EnvRewriteFill, &s.CaptureBackfillOnRewrite)
	if v := os.Getenv(EnvReconcile); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration like 30s: %w", EnvReconcile, v, err))
		}
		s.ReconcileInterval = d
	}
	if v := os.Getenv(EnvConfirm); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration like 2s (0 to confirm at once)", EnvConfirm, v))
		}
		s.CaptureConfirmDelay = d
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{EnvNATSPing, &s.NATSPingInterval}, {EnvRecvTimeout, &s.CaptureReceiveTimeout}, {EnvApplyTime, &s.SinkApplyTimeout}} {
		if v := os.Getenv(d.name); v != "" {
			dur, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: want a duration like 30s: %w", d.name, v, err))
			}
			*d.dst = dur
		}
	}
	if v := os.Getenv(EnvNATSPings); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want a count: %w", EnvNATSPings, v, err))
		}
		s.NATSMaxPingsOut = n
	}
	if v := os.Getenv(EnvStreamBytes); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want a byte count: %w", EnvStreamBytes, v, err))
		}
		s.StreamMaxBytes = n
	}
	if v := os.Getenv(EnvDupWindow); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration like 2m (0 for the default)", EnvDupWindow, v))
		}
		s.StreamDuplicateWindow = d
	}
	if v := os.Getenv(EnvBatchSize); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want a row count: %w", EnvBatchSize, v, err))
		}
		s.SinkBatchSize = n
	}
	if v := os.Getenv(EnvBatchWait); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration like 200ms: %w", EnvBatchWait, v, err))
		}
		s.SinkBatchWait = d
	}
	if err := s.Scale.load(); err != nil {
		errs = append(errs, err)
	}
	if err := s.AtRest.load(); err != nil {
		errs = append(errs, err)
	}
	if err := s.DLQRetention.load(); err != nil {
		errs = append(errs, err)
	}
	return s, errors.Join(errs...)
}

// ConfirmDelay resolves CaptureConfirmDelay: an explicit value, or one
// embedded fsync interval plus a second of margin.
func (s *Settings) ConfirmDelay() time.Duration {
	if s.CaptureConfirmDelay >= 0 {
		return s.CaptureConfirmDelay
	}
	if s.NATSURL != "" || s.EmbeddedNATSSync == "always" {
		return 0
	}
	d, err := time.ParseDuration(s.EmbeddedNATSSync)
	if err != nil {
		return 0
	}
	return d + time.Second
}

// Automatic duplicate windows (see DuplicateWindow).
const (
	// EmbeddedDuplicateWindow covers capture's confirm lag (ack, confirm
	// delay and interval: about 3s), its reconnect backoff and a
	// transaction of a few hundred thousand changes, while its ids (about
	// 120 bytes each in the server's heap) stay within rosetta dev's
	// memory: 70 MB at 20k changes/s.
	EmbeddedDuplicateWindow = 30 * time.Second
	// ExternalDuplicateWindow is the NATS server's own default: a NATS
	// server has its own memory, sized for the rates it takes.
	ExternalDuplicateWindow = 2 * time.Minute
)

// DuplicateWindow resolves StreamDuplicateWindow: an explicit value, or
// EmbeddedDuplicateWindow when JetStream runs inside this process (the
// ids it remembers share the process's memory) and ExternalDuplicateWindow
// with a NATS server of its own.
func (s *Settings) DuplicateWindow() time.Duration {
	switch {
	case s.StreamDuplicateWindow > 0:
		return s.StreamDuplicateWindow
	case s.NATSURL == "":
		return EmbeddedDuplicateWindow
	default:
		return ExternalDuplicateWindow
	}
}

// loopback reports whether a listen address host:port binds only to a
// loopback interface. An empty host or 0.0.0.0 binds to every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Validate checks the settings a service needs; it applies the dev secret
// key under Dev and reports whether it did (the caller logs a warning).
func (s *Settings) Validate() (usedDevKey bool, err error) {
	var errs []error
	if s.ConfigDSN == "" {
		errs = append(errs, fmt.Errorf("%s is empty: set it to the config database URL", EnvConfigDSN))
	}
	if s.SecretKey == "" && s.Dev {
		s.SecretKey = DevSecretKey
		usedDevKey = true
	}
	if s.SecretKey == DevSecretKey {
		// The development key is public: whatever it sealed is readable
		// by anyone who reads the config DB. Only a machine's own user may
		// reach a process using it.
		if !s.Dev {
			errs = append(errs, fmt.Errorf("%s is the public development key: only `rosetta dev` on loopback may use it; set a random key (e.g. `openssl rand -hex 32`)", EnvSecretKey))
		}
		for _, l := range []struct{ env, addr string }{{EnvHTTPAddr, s.HTTPAddr}, {EnvNATSListen, s.EmbeddedNATSAddr}} {
			if l.env == EnvNATSListen && s.NATSURL != "" {
				continue
			}
			if !loopback(l.addr) {
				errs = append(errs, fmt.Errorf("%s=%q is not a loopback address, and %s is unset (the public development key would seal secrets): set %s, or listen on 127.0.0.1",
					l.env, l.addr, EnvSecretKey, EnvSecretKey))
			}
		}
	}
	if err := s.NATSAuth.Validate(); err != nil {
		errs = append(errs, err)
	}
	if s.NATSURL == "" && !s.NATSAuth.IsZero() {
		errs = append(errs, fmt.Errorf("the ROSETTA_NATS_* credentials and TLS settings are for an external NATS and %s is empty: set it, or unset them (the embedded server uses the generated users in the data dir)", EnvNATSURL))
	}
	if s.NATSURL == "" {
		if (s.EmbeddedNATSTLSCert == "") != (s.EmbeddedNATSTLSKey == "") {
			errs = append(errs, fmt.Errorf("%s and %s go together: set both or neither", EnvNATSTLSCert, EnvNATSTLSKey))
		}
		if !loopback(s.EmbeddedNATSAddr) && s.EmbeddedNATSTLSCert == "" {
			errs = append(errs, fmt.Errorf("%s=%q is not a loopback address: the embedded NATS carries row data and credentials, so off loopback it needs TLS (%s and %s), or listen on 127.0.0.1",
				EnvNATSListen, s.EmbeddedNATSAddr, EnvNATSTLSCert, EnvNATSTLSKey))
		}
	}
	if err := ValidateRedis(s.RedisURL, s.RedisAuth); err != nil {
		errs = append(errs, err)
	}
	if s.SecretKeyPrevious != "" && len(s.SecretKeyPrevious) < 16 {
		errs = append(errs, fmt.Errorf("%s is too short (%d characters): it must be the key in use before the rotation", EnvSecretPrev, len(s.SecretKeyPrevious)))
	}
	if s.SecretKey == "" {
		errs = append(errs, fmt.Errorf("%s is empty: set it to a random string of at least 16 characters (e.g. `openssl rand -hex 32`)", EnvSecretKey))
	} else if len(s.SecretKey) < 16 {
		errs = append(errs, fmt.Errorf("%s is too short (%d characters): use at least 16", EnvSecretKey, len(s.SecretKey)))
	}
	if s.ReconcileInterval <= 0 {
		errs = append(errs, fmt.Errorf("%s must be positive", EnvReconcile))
	}
	if s.StreamMaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("%s must be positive", EnvStreamBytes))
	}
	if s.StreamDuplicateWindow < 0 {
		errs = append(errs, fmt.Errorf("%s must not be negative", EnvDupWindow))
	}
	if s.SinkBatchSize <= 0 || s.SinkBatchSize > 100000 {
		errs = append(errs, fmt.Errorf("%s must be between 1 and 100000", EnvBatchSize))
	}
	if s.SinkBatchWait <= 0 {
		errs = append(errs, fmt.Errorf("%s must be positive", EnvBatchWait))
	}
	if s.NATSPingInterval <= 0 || s.NATSMaxPingsOut <= 0 {
		errs = append(errs, fmt.Errorf("%s and %s must be positive", EnvNATSPing, EnvNATSPings))
	}
	if s.CaptureReceiveTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s must be positive", EnvRecvTimeout))
	}
	if s.SinkApplyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s must be positive", EnvApplyTime))
	}
	if s.EmbeddedNATSSync != "always" {
		if _, err := time.ParseDuration(s.EmbeddedNATSSync); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want \"always\" or a duration like 1s", EnvNATSSync, s.EmbeddedNATSSync))
		}
	}
	if err := s.Scale.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := s.DLQRetention.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := s.AtRest.validate(); err != nil {
		errs = append(errs, err)
	}
	if s.DataDir != "" {
		abs, err := filepath.Abs(s.DataDir)
		if err == nil {
			s.DataDir = abs
		}
	}
	return usedDevKey, errors.Join(errs...)
}
