package destquery

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/nats-io/nats.go"
)

// Holder is a writer that holds a DuckDB file open between its batches (the
// duckdb sink driver). WithFileReleased waits until no batch is being
// applied (or ctx ends), closes the file if it is open, runs fn while it
// applies nothing, and then lets its batches resume (reopening the file).
type Holder interface {
	WithFileReleased(ctx context.Context, fn func(context.Context) error) error
}

// Registry knows which DuckDB files this process holds. Safe for
// concurrent use; the zero value is not usable, see NewRegistry.
type Registry struct {
	log *slog.Logger

	mu      sync.Mutex
	holders map[string][]*entry // by normalised path
	nc      *nats.Conn          // set by Serve
	subs    map[string]*nats.Subscription
}

type entry struct{ h Holder }

// NewRegistry returns an empty registry.
func NewRegistry(log *slog.Logger) *Registry {
	return &Registry{log: log, holders: map[string][]*entry{}, subs: map[string]*nats.Subscription{}}
}

// normalize is the key of a path: absolute and clean.
func normalize(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return filepath.Clean(path)
}

// Add records that h holds the file at path until the returned function is
// called. Several holders of one path are all paused for a query.
func (r *Registry) Add(path string, h Holder) (remove func()) {
	key := normalize(path)
	e := &entry{h: h}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holders[key] = append(r.holders[key], e)
	r.subscribeLocked(key)
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			list := r.holders[key]
			for i, x := range list {
				if x == e {
					list = append(list[:i:i], list[i+1:]...)
					break
				}
			}
			if len(list) == 0 {
				delete(r.holders, key)
				if sub := r.subs[key]; sub != nil {
					_ = sub.Unsubscribe()
					delete(r.subs, key)
				}
				return
			}
			r.holders[key] = list
		})
	}
}

// holding returns the holders of path, nil if this process holds none.
func (r *Registry) holding(path string) []Holder {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Holder
	for _, e := range r.holders[normalize(path)] {
		out = append(out, e.h)
	}
	return out
}

// Held reports whether this process holds the file at path.
func (r *Registry) Held(path string) bool { return len(r.holding(path)) > 0 }

// query runs req on path while every holder of it in this process has
// released it. ok is false when this process holds no such file.
func (r *Registry) query(ctx context.Context, path string, req Request) (res *Result, ok bool, err error) {
	hs := r.holding(path)
	if len(hs) == 0 {
		return nil, false, nil
	}
	req = req.normalized()
	ctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	// Nest the holders: the query runs once all of them released the file.
	var call func(ctx context.Context, i int) error
	call = func(ctx context.Context, i int) error {
		if i == len(hs) {
			res, err = QueryFile(ctx, path, req)
			return err
		}
		return hs[i].WithFileReleased(ctx, func(ctx context.Context) error { return call(ctx, i+1) })
	}
	if err := call(ctx, 0); err != nil {
		return nil, true, fmt.Errorf("query duckdb file held by this process: %w", err)
	}
	return res, true, nil
}
