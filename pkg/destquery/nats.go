package destquery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/nats-io/nats.go"
)

// SubjectPrefix starts the subjects on which holders answer queries.
const SubjectPrefix = "rosetta.destquery.duckdb."

// Subject is the NATS subject the holder of the DuckDB file at path answers
// on: SubjectPrefix and a hash of the absolute, clean path (a path's
// characters are not all valid in a subject).
func Subject(path string) string {
	sum := sha256.Sum256([]byte(normalize(path)))
	return SubjectPrefix + hex.EncodeToString(sum[:16])
}

// wireRequest and wireReply are the JSON bodies of a NATS query.
type wireRequest struct {
	Path    string  `json:"path"`
	Request Request `json:"request"`
}

type wireReply struct {
	Result *Result `json:"result,omitempty"`
	Error  string  `json:"error,omitempty"`
	// Code names the sentinel the error wraps: "not_read", "no_file".
	Code string `json:"code,omitempty"`
}

// Serve answers, over nc, the queries for every file this registry holds,
// now and as holders are added, until stop is called.
func (r *Registry) Serve(nc *nats.Conn) (stop func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nc != nil {
		return nil, errors.New("destquery: registry is already served")
	}
	r.nc = nc
	for key := range r.holders {
		r.subscribeLocked(key)
	}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for key, sub := range r.subs {
			_ = sub.Unsubscribe()
			delete(r.subs, key)
		}
		r.nc = nil
	}, nil
}

// subscribeLocked subscribes to key's subject if served and not yet
// subscribed. r.mu is held.
func (r *Registry) subscribeLocked(key string) {
	if r.nc == nil || r.subs[key] != nil {
		return
	}
	sub, err := r.nc.Subscribe(Subject(key), r.answer)
	if err != nil {
		r.log.Warn("serve queries on duckdb file", "path", key, "error", err)
		return
	}
	r.subs[key] = sub
}

// answer handles one NATS query (on the subscription's goroutine, so the
// queries of one file run one at a time).
func (r *Registry) answer(msg *nats.Msg) {
	var req wireRequest
	var rep wireReply
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		rep.Error = "decode query request: " + err.Error()
	} else if Subject(req.Path) != msg.Subject {
		rep.Error = "query request names another file than its subject"
	} else {
		res, ok, err := r.query(context.Background(), req.Path, req.Request)
		switch {
		case !ok:
			rep.Error, rep.Code = "this process no longer holds the file", "not_held"
		case err != nil:
			rep.Error, rep.Code = err.Error(), codeOf(err)
		default:
			rep.Result = res
		}
	}
	body, err := json.Marshal(rep)
	if err != nil {
		body, _ = json.Marshal(wireReply{Error: "encode query result: " + err.Error()})
	}
	if err := msg.Respond(body); err != nil {
		r.log.Warn("answer duckdb query", "error", err)
	}
}

func codeOf(err error) string {
	switch {
	case errors.Is(err, ErrNotRead):
		return "not_read"
	case errors.Is(err, ErrNoFile):
		return "no_file"
	}
	return ""
}

// remoteError is an error answered by the holding process.
type remoteError struct {
	msg  string
	code string
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Is(target error) bool {
	return (e.code == "not_read" && target == ErrNotRead) || (e.code == "no_file" && target == ErrNoFile)
}

// Querier runs queries on DuckDB destination files wherever they are held.
type Querier struct {
	reg *Registry
	nc  *nats.Conn
}

// NewQuerier returns a querier that asks reg (this process's holders) and
// then, over nc, the other processes. Either may be nil.
func NewQuerier(reg *Registry, nc *nats.Conn) *Querier { return &Querier{reg: reg, nc: nc} }

// Query runs req on the DuckDB file at path: in this process if it holds
// the file, else in the process that does (over NATS), else on the file
// itself opened read-only here. Errors wrap ErrNotRead for a statement
// that is not one read, ErrNoFile when the file does not exist, and
// ErrHeldElsewhere when a process that does not answer queries holds it.
func (q *Querier) Query(ctx context.Context, path string, req Request) (*Result, error) {
	req = req.normalized()
	if res, ok, err := q.reg.query(ctx, path, req); ok {
		return res, err
	}
	if q.nc != nil {
		res, err := q.remote(ctx, path, req)
		if !errors.Is(err, nats.ErrNoResponders) && !isNotHeld(err) {
			return res, err
		}
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("query %s: %w", path, ErrNoFile)
	}
	res, err := QueryFile(ctx, path, req)
	if err != nil && isLockError(err) {
		return nil, fmt.Errorf("query %s: %w (%v)", path, ErrHeldElsewhere, err)
	}
	return res, err
}

func isNotHeld(err error) bool {
	var re *remoteError
	return errors.As(err, &re) && re.code == "not_held"
}

// remote asks the holder of path over NATS. nats.ErrNoResponders means no
// process serves it.
func (q *Querier) remote(ctx context.Context, path string, req Request) (*Result, error) {
	body, err := json.Marshal(wireRequest{Path: normalize(path), Request: req})
	if err != nil {
		return nil, fmt.Errorf("encode query request: %w", err)
	}
	// The holder may first wait for a batch to finish: allow the query's
	// timeout plus a margin for the round trip.
	rctx, cancel := context.WithTimeout(ctx, req.Timeout+5*time.Second)
	defer cancel()
	msg, err := q.nc.RequestWithContext(rctx, Subject(path), body)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, err
		}
		return nil, fmt.Errorf("ask the process holding %s: %w", path, err)
	}
	var rep wireReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return nil, fmt.Errorf("decode query reply: %w", err)
	}
	if rep.Error != "" {
		return nil, &remoteError{msg: rep.Error, code: rep.Code}
	}
	if rep.Result == nil {
		return nil, errors.New("query reply holds no result")
	}
	return rep.Result, nil
}

// isLockError reports whether err is DuckDB refusing a file another
// process holds ("Could not set lock on file … Conflicting lock is held").
func isLockError(err error) bool {
	var de *duckdb.Error
	return errors.As(err, &de) && de.Type == duckdb.ErrorTypeIO
}
