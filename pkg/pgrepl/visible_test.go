package pgrepl

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// waitingResolver records the order of WaitCommitted and ResolveRelation
// calls.
type waitingResolver struct {
	staticResolver
	calls []string
}

func (w *waitingResolver) WaitCommitted(_ context.Context, xid uint32) error {
	w.calls = append(w.calls, "wait "+strconv.FormatUint(uint64(xid), 10))
	return nil
}

func (w *waitingResolver) ResolveRelation(ctx context.Context, rel *pglogrepl.RelationMessage) ([]Column, error) {
	w.calls = append(w.calls, "resolve "+rel.RelationName)
	return w.staticResolver.ResolveRelation(ctx, rel)
}

// TestDecoderWaitsForCommitBeforeResolving: a relation message inside a
// transaction is resolved only after the resolver saw the transaction
// committed, once per transaction; one outside a transaction (a snapshot's
// synthetic begin has xid 0) waits for nothing.
func TestDecoderWaitsForCommitBeforeResolving(t *testing.T) {
	r := &waitingResolver{staticResolver: staticResolver{
		100: {col("integer", "integer", 23, true), col("text", "text", 25, false), col("text", "text", 25, false),
			col("boolean", "boolean", 16, false), col("bigint", "bigint", 20, false)},
		200: {col("bigint", "bigint", 20, true), col("text", "text", 25, false)},
	}}
	d := NewDecoder(1, "db", r)
	ctx := context.Background()
	steps := []pglogrepl.Message{
		&pglogrepl.BeginMessage{Xid: 700, FinalLSN: 0x100},
		relItems, relFull,
		&pglogrepl.CommitMessage{CommitLSN: 0x100},
		&pglogrepl.BeginMessage{Xid: 0, FinalLSN: 0x200},
		relItems,
		&pglogrepl.CommitMessage{CommitLSN: 0x200},
		&pglogrepl.BeginMessage{Xid: 701, FinalLSN: 0x300},
		relFull,
		&pglogrepl.CommitMessage{CommitLSN: 0x300},
	}
	for _, m := range steps {
		if _, err := d.Decode(ctx, 0, m); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"wait 700", "resolve items", "resolve full_t", "resolve items", "wait 701", "resolve full_t"}
	if !slices.Equal(r.calls, want) {
		t.Fatalf("calls %v, want %v", r.calls, want)
	}
}

// TestWaitCommitted: against a real server, a transaction still in
// progress is waited for until it commits, and one that committed returns
// at once.
func TestWaitCommitted(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	db := pg.CreateDatabase(t, "visible")
	ctx := ctxT(t)
	writer := pg.Connect(t, db)
	r := NewCatalogResolver(pg.Connect(t, db))
	pg.Exec(t, db, "CREATE TABLE v (id int)")

	tx, err := writer.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var full string
	if err := tx.QueryRow(ctx, "INSERT INTO v VALUES (1) RETURNING pg_current_xact_id()::text").Scan(&full); err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(full, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	xid := uint32(n) // as pgoutput's Begin carries it
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := r.WaitCommitted(short, xid); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for a transaction in progress = %v, want the deadline", err)
	}
	committing := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(200 * time.Millisecond) // WaitCommitted polls meanwhile
		close(committing)
		if err := tx.Commit(ctx); err != nil {
			t.Error(err)
		}
	}()
	if err := r.WaitCommitted(ctx, xid); err != nil {
		t.Fatal(err)
	}
	select {
	case <-committing:
	default:
		t.Fatal("WaitCommitted returned before the commit was sent")
	}
	<-done
	if err := r.WaitCommitted(ctx, xid); err != nil {
		t.Fatal(err)
	}
}
