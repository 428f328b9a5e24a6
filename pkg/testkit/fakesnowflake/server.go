package fakesnowflake

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// User is an account user allowed to log in with key-pair authentication.
type User struct {
	// Name is the login name; it is matched upper-cased, as Snowflake does.
	Name string
	// PublicKeys are the registered RSA public keys (Snowflake allows two, for
	// rotation; the fake allows any number).
	PublicKeys []*rsa.PublicKey
	// Parameters are the user's session parameter defaults (ALTER USER …
	// SET name = value), applied to each of its new sessions before the
	// login's own. See paramDefaults for the ones the fake acts on.
	Parameters map[string]string
}

// Config configures a Server. Build it from DefaultConfig.
type Config struct {
	// Account is the account locator clients put in Config.Account (part before the
	// first dot is used, upper-cased). Required.
	Account string
	// Users may log in. More can be added later with Server.SetUser.
	Users []User
	// Databases are created at start, each with a PUBLIC schema. Default: ["ROSETTA"].
	Databases []string
	// DataDir holds one DuckDB file per Snowflake database (<NAME>.duckdb). Empty
	// means everything is in memory and lost on Close.
	DataDir string
	// StageDir holds internal stages (table, user and named stages) as plain
	// directories. Empty means a temporary directory removed on Close.
	StageDir string
	// SessionTTL is how long a session token is valid before the client must renew
	// it with the master token. Default 1h.
	SessionTTL time.Duration
	// Logger receives request and statement logs. Default: discard.
	Logger *slog.Logger
	// TLS serves HTTPS with a certificate for 127.0.0.1 signed by a CA
	// made at Start (Server.CAPEM): clients use protocol https and trust
	// that CA, as Rosetta's tls_ca_file does. Default: plain HTTP.
	TLS bool
}

// DefaultConfig returns a Config for account with an in-memory ROSETTA database.
func DefaultConfig(account string) Config {
	return Config{
		Account:    account,
		Databases:  []string{"ROSETTA"},
		SessionTTL: time.Hour,
	}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.Account == "" {
		return errors.New("fakesnowflake: Config.Account is required")
	}
	if c.SessionTTL <= 0 {
		return errors.New("fakesnowflake: Config.SessionTTL must be positive")
	}
	for _, u := range c.Users {
		if u.Name == "" {
			return errors.New("fakesnowflake: a Config.Users entry has no Name")
		}
	}
	for _, d := range c.Databases {
		if d == "" || strings.ContainsAny(d, `/\`) {
			return fmt.Errorf("fakesnowflake: invalid database name %q", d)
		}
	}
	return nil
}

// Server is a fake Snowflake endpoint: the real gosnowflake driver logs in with
// key-pair authentication and runs statements, which execute on embedded DuckDB.
type Server struct {
	cfg      Config
	log      *slog.Logger
	db       *sql.DB
	stageDir string
	ownStage bool // stageDir is a temporary directory we remove on Close

	mu         sync.Mutex
	users      map[string][]*rsa.PublicKey
	userParams map[string]map[string]string // User.Parameters by user, upper-cased names
	sessions   map[string]*session          // by session token
	masters    map[string]*session          // by master token
	running    map[string]context.CancelFunc
	nextID     int64
	loads      map[string]map[string]string // COPY load history: table key -> file -> sha256
	lengths    map[string]map[string]int64  // declared VARCHAR/BINARY lengths: table key -> COLUMN -> n (lengths.go)
	added      map[string]map[string]bool   // columns ADD COLUMN gave a DEFAULT: table key -> COLUMN (lengths.go)
	faults     []*fault                     // statements to fail, for tests (FailNext)

	httpSrv  *http.Server
	listener net.Listener
	serveErr chan error
	ca       *testCA // with Config.TLS
}

// New opens DuckDB and prepares the databases; Start begins serving.
func New(cfg Config) (*Server, error) {
	if len(cfg.Databases) == 0 {
		cfg.Databases = []string{"ROSETTA"}
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = time.Hour
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:        cfg,
		log:        log,
		users:      map[string][]*rsa.PublicKey{},
		userParams: map[string]map[string]string{},
		sessions:   map[string]*session{},
		masters:    map[string]*session{},
		running:    map[string]context.CancelFunc{},
		loads:      map[string]map[string]string{},
		lengths:    map[string]map[string]int64{},
		added:      map[string]map[string]bool{},
	}
	for _, u := range cfg.Users {
		s.users[strings.ToUpper(u.Name)] = append([]*rsa.PublicKey(nil), u.PublicKeys...)
		s.userParams[strings.ToUpper(u.Name)] = upperKeys(u.Parameters)
	}
	s.stageDir = cfg.StageDir
	if s.stageDir == "" {
		dir, err := os.MkdirTemp("", "fakesnowflake-stage-")
		if err != nil {
			return nil, fmt.Errorf("fakesnowflake: create stage directory: %w", err)
		}
		s.stageDir, s.ownStage = dir, true
	} else if err := os.MkdirAll(s.stageDir, 0o755); err != nil {
		return nil, fmt.Errorf("fakesnowflake: create stage directory %s: %w", s.stageDir, err)
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("fakesnowflake: create data directory %s: %w", cfg.DataDir, err)
		}
	}
	// The DuckDB instance itself is in memory; each Snowflake database is ATTACHed
	// under its own name so three-part names (DB.SCHEMA.TABLE) resolve as in Snowflake.
	connector, err := duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		// Deterministic session time zone: TIMESTAMP_TZ values come back in UTC.
		if _, err := execer.ExecContext(context.Background(), "SET TimeZone='UTC'", nil); err != nil {
			return err
		}
		for _, q := range semiStructuredMacros {
			if _, err := execer.ExecContext(context.Background(), q, nil); err != nil {
				return fmt.Errorf("create semi-structured function: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		s.cleanupStage()
		return nil, fmt.Errorf("fakesnowflake: open duckdb: %w", err)
	}
	s.db = sql.OpenDB(connector)
	ctx := context.Background()
	for _, name := range cfg.Databases {
		if err := s.createDatabase(ctx, strings.ToUpper(name), false); err != nil {
			_ = s.db.Close()
			s.cleanupStage()
			return nil, err
		}
	}
	return s, nil
}

// createDatabase attaches a DuckDB database for a Snowflake database and gives it a
// PUBLIC schema.
func (s *Server) createDatabase(ctx context.Context, name string, ifNotExists bool) error {
	path := ":memory:"
	if s.cfg.DataDir != "" {
		path = filepath.Join(s.cfg.DataDir, name+".duckdb")
	}
	ine := ""
	if ifNotExists {
		ine = "IF NOT EXISTS "
	}
	if _, err := s.db.ExecContext(ctx, "ATTACH "+ine+quoteString(path)+" AS "+quoteIdent(name)); err != nil {
		return fmt.Errorf("fakesnowflake: attach database %s: %w", name, err)
	}
	if _, err := s.db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(name)+".PUBLIC"); err != nil {
		return fmt.Errorf("fakesnowflake: create schema %s.PUBLIC: %w", name, err)
	}
	return nil
}

// Start listens on a free 127.0.0.1 port and serves until Close.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("fakesnowflake: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /session/v1/login-request", s.handleLogin)
	mux.HandleFunc("POST /session/token-request", s.handleTokenRenew)
	mux.HandleFunc("POST /session/heartbeat", s.handleHeartbeat)
	mux.HandleFunc("POST /session", s.handleSessionDelete)
	mux.HandleFunc("POST /queries/v1/query-request", s.handleQuery)
	mux.HandleFunc("POST /queries/v1/abort-request", s.handleAbort)
	mux.HandleFunc("POST /telemetry/send", s.handleTelemetry)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("fakesnowflake: unhandled request", "method", r.Method, "path", r.URL.Path)
		http.Error(w, "fakesnowflake: no such endpoint "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	})
	s.listener = ln
	if s.cfg.TLS {
		ca, err := newTestCA()
		if err != nil {
			_ = ln.Close()
			return err
		}
		s.ca = ca
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{ca.cert}, MinVersion: tls.VersionTLS12})
	}
	// Refused TLS handshakes (a client trusting another CA, on purpose in
	// tests) go to the server's logger, not the process's stderr.
	s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.httpSrv.Serve(ln) }()
	return nil
}

// URL is the server's base URL (http://127.0.0.1:port, https with
// Config.TLS).
func (s *Server) URL() string { return s.Protocol() + "://" + s.listener.Addr().String() }

// Protocol is what clients put in Config.Protocol: https with Config.TLS,
// else http.
func (s *Server) Protocol() string {
	if s.cfg.TLS {
		return "https"
	}
	return "http"
}

// CAPEM is the PEM certificate of the CA that signed the server's
// certificate (Config.TLS), for clients to trust; nil without TLS.
func (s *Server) CAPEM() []byte {
	if s.ca == nil {
		return nil
	}
	return s.ca.caPEM
}

// Host is the address clients put in Config.Host.
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the port clients put in Config.Port.
func (s *Server) Port() int { return s.listener.Addr().(*net.TCPAddr).Port }

// Account is the configured account.
func (s *Server) Account() string { return s.cfg.Account }

// StageDir is where internal stages live (for tests that inspect staged files).
func (s *Server) StageDir() string { return s.stageDir }

// DB gives tests direct access to DuckDB, e.g. to assert on table contents without
// going through the Snowflake protocol.
func (s *Server) DB() *sql.DB { return s.db }

// SetUser registers or replaces a user's public keys (key rotation in tests).
func (s *Server) SetUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[strings.ToUpper(u.Name)] = append([]*rsa.PublicKey(nil), u.PublicKeys...)
	s.userParams[strings.ToUpper(u.Name)] = upperKeys(u.Parameters)
}

func upperKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToUpper(k)] = v
	}
	return out
}

// Close stops serving, ends all sessions (rolling back open transactions) and
// closes DuckDB.
func (s *Server) Close() error {
	var errs []error
	// Interrupt running statements so handlers, and with them Shutdown, finish promptly.
	s.mu.Lock()
	for _, cancel := range s.running {
		cancel()
	}
	s.mu.Unlock()
	if s.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("fakesnowflake: shut down http: %w", err))
		}
		cancel()
		if err := <-s.serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("fakesnowflake: serve: %w", err))
		}
	}
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.sessions, s.masters = map[string]*session{}, map[string]*session{}
	s.mu.Unlock()
	for _, ss := range sessions {
		if err := ss.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("fakesnowflake: close duckdb: %w", err))
	}
	s.cleanupStage()
	return errors.Join(errs...)
}

func (s *Server) cleanupStage() {
	if s.ownStage {
		_ = os.RemoveAll(s.stageDir)
	}
}

// randomToken returns a 32-byte random hex string.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// newQueryID returns a Snowflake-shaped query id (UUID layout).
func newQueryID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// --- HTTP plumbing ---------------------------------------------------------------

// reply is the envelope of every Snowflake REST answer.
type reply struct {
	Data    any    `json:"data"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Success bool   `json:"success"`
}

func (s *Server) writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Warn("fakesnowflake: write response", "err", err)
	}
}

func (s *Server) writeFailure(w http.ResponseWriter, code, msg string, data any) {
	s.writeJSON(w, reply{Data: data, Code: code, Message: msg, Success: false})
}

// readBody reads a request body, transparently gunzipping it.
func readBody(r *http.Request, v any) error {
	body := io.Reader(r.Body)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			return fmt.Errorf("gunzip request body: %w", err)
		}
		defer gz.Close()
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("read request body: %w", err)
	}
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode request body: %w", err)
	}
	return nil
}

// sessionFor resolves the Authorization header to a live session. It writes the
// failure reply itself and returns nil when there is none.
func (s *Server) sessionFor(w http.ResponseWriter, r *http.Request) *session {
	token := tokenFromHeader(r.Header.Get("Authorization"))
	if token == "" {
		s.writeFailure(w, codeSessionGone, "Session token missing: send Authorization: Snowflake Token=\"<token>\"", nil)
		return nil
	}
	s.mu.Lock()
	ss := s.sessions[token]
	s.mu.Unlock()
	if ss == nil {
		s.writeFailure(w, codeSessionGone, "Session no longer exists. New login required to access the service.", nil)
		return nil
	}
	if time.Now().After(ss.expiresAt()) {
		// The client answers 390112 by renewing with its master token and retrying.
		s.writeFailure(w, codeSessionExpired, "Session token has expired. Renew with the master token.", nil)
		return nil
	}
	return ss
}

func tokenFromHeader(h string) string {
	const prefix = `Snowflake Token="`
	if !strings.HasPrefix(h, prefix) || !strings.HasSuffix(h, `"`) {
		return ""
	}
	return h[len(prefix) : len(h)-1]
}

// --- endpoints -------------------------------------------------------------------

type loginRequest struct {
	Data struct {
		AccountName   string `json:"ACCOUNT_NAME"`
		LoginName     string `json:"LOGIN_NAME"`
		Authenticator string `json:"AUTHENTICATOR"`
		Token         string `json:"TOKEN"`
		// SessionParameters are the client's session parameters
		// (gosnowflake's Config.Params), applied over the user's.
		SessionParameters map[string]any `json:"SESSION_PARAMETERS"`
	} `json:"data"`
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := readBody(r, &req); err != nil {
		s.writeFailure(w, codeIncorrectLogin, err.Error(), nil)
		return
	}
	if !strings.EqualFold(req.Data.Authenticator, "SNOWFLAKE_JWT") {
		s.writeFailure(w, codeUnsupportedAuth, fmt.Sprintf(
			"fakesnowflake supports only key-pair (SNOWFLAKE_JWT) authentication, got %q", req.Data.Authenticator), nil)
		return
	}
	if accountLocator(req.Data.AccountName) != accountLocator(s.cfg.Account) {
		// Another account is another host: Snowflake's front end answers
		// 404 for an account it does not serve.
		http.Error(w, fmt.Sprintf("account %q does not exist on this server (account %q)", req.Data.AccountName, s.cfg.Account), http.StatusNotFound)
		return
	}
	user, err := verifyJWT(req.Data.Token, s.cfg.Account, time.Now(), func(u string) ([]*rsa.PublicKey, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		keys, ok := s.users[u]
		return keys, ok
	})
	if err != nil {
		code, msg := asLoginError(err)
		s.log.Info("fakesnowflake: login rejected", "code", code, "reason", msg)
		s.writeFailure(w, code, msg, nil)
		return
	}
	q := r.URL.Query()
	dbName := normalizeName(q.Get("databaseName"))
	if dbName == "" {
		dbName = strings.ToUpper(s.cfg.Databases[0])
	}
	schemaName := normalizeName(q.Get("schemaName"))
	if schemaName == "" {
		schemaName = "PUBLIC"
	}
	ss, err := s.openSession(r.Context(), user, dbName, schemaName, normalizeName(q.Get("warehouse")), normalizeName(q.Get("roleName")))
	if err == nil && fmt.Sprint(req.Data.SessionParameters["CLIENT_VALIDATE_DEFAULT_PARAMETERS"]) == "true" &&
		(q.Get("databaseName") != "" || q.Get("schemaName") != "") {
		// The client asks Snowflake to check the database and schema it
		// names (gosnowflake does by default): a missing one fails the login.
		if uerr := ss.use(r.Context(), dbName, schemaName, true); uerr != nil {
			s.endSession(ss)
			s.writeFailure(w, codeObjectMissing, fmt.Sprintf("The requested database or schema does not exist or not authorized: %s.%s", dbName, schemaName), nil)
			return
		}
	}
	if err == nil {
		err = ss.applyLoginParams(req.Data.SessionParameters)
		if err != nil {
			s.endSession(ss)
		}
	}
	if err != nil {
		s.writeFailure(w, "390189", err.Error(), nil)
		return
	}
	s.log.Info("fakesnowflake: login", "user", user, "session", ss.id)
	s.writeJSON(w, reply{Success: true, Data: map[string]any{
		"token":                   ss.token,
		"masterToken":             ss.masterToken,
		"validityInSeconds":       int64(s.cfg.SessionTTL / time.Second),
		"masterValidityInSeconds": int64(4 * time.Hour / time.Second),
		"sessionId":               ss.id,
		"displayUserName":         user,
		"serverVersion":           "fakesnowflake",
		"parameters":              []any{},
		"sessionInfo": map[string]any{
			"databaseName":  ss.database,
			"schemaName":    ss.schema,
			"warehouseName": ss.warehouse,
			"roleName":      ss.role,
		},
	}})
}

// endSession forgets and closes a session that failed its login.
func (s *Server) endSession(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss.token)
	delete(s.masters, ss.masterToken)
	s.mu.Unlock()
	_ = ss.close()
}

// normalizeName applies Snowflake's rule to a name given in connection parameters:
// quoted keeps its case, unquoted is upper-cased.
func normalizeName(n string) string {
	if len(n) >= 2 && n[0] == '"' && n[len(n)-1] == '"' {
		return strings.ReplaceAll(n[1:len(n)-1], `""`, `"`)
	}
	return strings.ToUpper(n)
}

func (s *Server) openSession(ctx context.Context, user, dbName, schemaName, warehouse, role string) (*session, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open duckdb connection: %w", err)
	}
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.mu.Unlock()
	ss := &session{
		srv:         s,
		id:          id,
		user:        user,
		token:       randomToken(),
		masterToken: randomToken(),
		conn:        conn,
		database:    dbName,
		schema:      schemaName,
		warehouse:   warehouse,
		role:        role,
		temps:       map[string]tempTable{},
	}
	s.mu.Lock()
	ss.params = newParams(s.userParams[user])
	s.mu.Unlock()
	ss.setExpiry(time.Now().Add(s.cfg.SessionTTL))
	if err := ss.init(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	s.mu.Lock()
	s.sessions[ss.token] = ss
	s.masters[ss.masterToken] = ss
	s.mu.Unlock()
	return ss, nil
}

func (s *Server) handleTokenRenew(w http.ResponseWriter, r *http.Request) {
	var req struct {
		OldSessionToken string `json:"oldSessionToken"`
		RequestType     string `json:"requestType"`
	}
	if err := readBody(r, &req); err != nil {
		s.writeFailure(w, codeMasterTokenGone, err.Error(), nil)
		return
	}
	master := tokenFromHeader(r.Header.Get("Authorization"))
	s.mu.Lock()
	ss := s.masters[master]
	if ss != nil && ss.token == req.OldSessionToken {
		delete(s.sessions, ss.token)
		ss.token = randomToken()
		ss.setExpiry(time.Now().Add(s.cfg.SessionTTL))
		s.sessions[ss.token] = ss
	}
	s.mu.Unlock()
	if ss == nil {
		s.writeFailure(w, codeMasterTokenGone, "Master token is invalid or the session was closed; log in again", nil)
		return
	}
	s.writeJSON(w, reply{Success: true, Data: map[string]any{
		"sessionToken":        ss.token,
		"validityInSecondsST": int64(s.cfg.SessionTTL / time.Second),
		"masterToken":         ss.masterToken,
		"validityInSecondsMT": int64(4 * time.Hour / time.Second),
		"sessionId":           ss.id,
	}})
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	if s.sessionFor(w, r) == nil {
		return
	}
	s.writeJSON(w, reply{Success: true})
}

// handleSessionDelete is the client's Close: POST /session?delete=true.
func (s *Server) handleSessionDelete(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("delete") != "true" {
		s.writeFailure(w, "000001", "fakesnowflake: POST /session supports only delete=true", nil)
		return
	}
	token := tokenFromHeader(r.Header.Get("Authorization"))
	s.mu.Lock()
	ss := s.sessions[token]
	if ss != nil {
		delete(s.sessions, ss.token)
		delete(s.masters, ss.masterToken)
	}
	s.mu.Unlock()
	if ss == nil {
		// Deleting a gone session is not an error for the client.
		s.writeFailure(w, codeSessionExpired, "Session no longer exists", nil)
		return
	}
	if err := ss.close(); err != nil {
		s.log.Warn("fakesnowflake: close session", "session", ss.id, "err", err)
	}
	s.writeJSON(w, reply{Success: true})
}

func (s *Server) handleAbort(w http.ResponseWriter, r *http.Request) {
	if s.sessionFor(w, r) == nil {
		return
	}
	var req struct {
		RequestID string `json:"requestId"`
	}
	if err := readBody(r, &req); err != nil {
		s.writeFailure(w, "000605", err.Error(), nil)
		return
	}
	s.mu.Lock()
	cancel := s.running[req.RequestID]
	s.mu.Unlock()
	if cancel == nil {
		s.writeFailure(w, "000605", "Identified SQL statement is not currently executing.", nil)
		return
	}
	cancel()
	s.writeJSON(w, reply{Success: true})
}

func (s *Server) handleTelemetry(w http.ResponseWriter, _ *http.Request) {
	s.writeJSON(w, reply{Success: true})
}

// queryRequest is the body of /queries/v1/query-request.
type queryRequest struct {
	SQLText      string                 `json:"sqlText"`
	AsyncExec    bool                   `json:"asyncExec"`
	SequenceID   uint64                 `json:"sequenceId"`
	DescribeOnly bool                   `json:"describeOnly"`
	Parameters   map[string]any         `json:"parameters"`
	Bindings     map[string]bindingJSON `json:"bindings"`
	BindStage    string                 `json:"bindStage"`
}

// bindingJSON is one bind variable as the client sends it.
type bindingJSON struct {
	Type   string          `json:"type"`
	Value  json.RawMessage `json:"value"`
	Format string          `json:"fmt"`
}

func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request) {
	ss := s.sessionFor(w, r)
	if ss == nil {
		return
	}
	var req queryRequest
	if err := readBody(r, &req); err != nil {
		s.writeFailure(w, "000001", err.Error(), nil)
		return
	}
	queryID := newQueryID()
	fail := func(err error) {
		se := toSnowflakeError(err)
		s.log.Info("fakesnowflake: statement failed", "session", ss.id, "sql", req.SQLText, "code", se.code, "err", se.msg)
		s.writeFailure(w, se.code, se.msg, map[string]any{"queryId": queryID, "sqlState": se.sqlState})
	}
	switch {
	case req.AsyncExec:
		fail(unsupported("asynchronous execution (WithAsyncMode)"))
		return
	case req.BindStage != "":
		fail(unsupported("stage array binding (CLIENT_STAGE_ARRAY_BINDING_THRESHOLD)"))
		return
	case req.DescribeOnly:
		fail(unsupported("describe-only requests"))
		return
	}
	if n, ok := req.Parameters["MULTI_STATEMENT_COUNT"]; ok && fmt.Sprint(n) != "1" {
		fail(unsupported("multi-statement requests (MULTI_STATEMENT_COUNT=%v)", n))
		return
	}
	binds, err := decodeBindings(req.Bindings)
	if err != nil {
		fail(err)
		return
	}
	// The client sends requestId in the URL; abort-request names it to cancel us.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	requestID := r.URL.Query().Get("requestId")
	if requestID != "" {
		s.mu.Lock()
		s.running[requestID] = cancel
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.running, requestID)
			s.mu.Unlock()
		}()
	}
	if err := s.injectedFault(ss, req.SQLText); err != nil {
		fail(err)
		return
	}
	start := time.Now()
	res, err := ss.execute(ctx, req.SQLText, binds)
	if err != nil {
		fail(err)
		return
	}
	s.log.Debug("fakesnowflake: statement", "session", ss.id, "sql", req.SQLText, "elapsed", time.Since(start))
	s.writeJSON(w, reply{Success: true, Data: res.toJSON(queryID, ss)})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
