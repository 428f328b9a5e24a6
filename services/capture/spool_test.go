package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"
)

// spoolOp is one step of a spool test: append a message of a
// (sub)transaction, or abort a subtransaction.
type spoolOp struct {
	abort bool
	xid   uint32
	body  string
}

func add(xid uint32, body string) spoolOp { return spoolOp{xid: xid, body: body} }
func abortSub(xid uint32) spoolOp         { return spoolOp{abort: true, xid: xid} }

func TestSpool(t *testing.T) {
	const top = 100
	tests := []struct {
		name string
		ops  []spoolOp
		want []string
	}{
		{"order kept", []spoolOp{add(top, "a"), add(top, "b"), add(top, "c")}, []string{"a", "b", "c"}},
		{"subtransactions replay with their parent", []spoolOp{add(top, "a"), add(101, "s1"), add(top, "b"), add(102, "s2")},
			[]string{"a", "s1", "b", "s2"}},
		{"aborted subtransaction cut out", []spoolOp{add(top, "a"), add(101, "x1"), add(101, "x2"), abortSub(101), add(top, "b")},
			[]string{"a", "b"}},
		{"aborted subtransaction takes its children", []spoolOp{add(top, "a"), add(101, "x"), add(102, "child"),
			abortSub(102), abortSub(101), add(top, "b"), add(103, "s3")}, []string{"a", "b", "s3"}},
		{"children's abort after the parent's changes nothing more", []spoolOp{add(top, "a"), add(101, "x"), add(102, "child"),
			abortSub(101), abortSub(102), add(top, "b")}, []string{"a", "b"}},
		{"a released sibling before the aborted one stays", []spoolOp{add(top, "a"), add(101, "kept"), add(102, "gone"),
			abortSub(102), add(101, "kept2")}, []string{"a", "kept", "kept2"}},
		{"subtransaction without messages", []spoolOp{add(top, "a"), abortSub(105), add(top, "b")}, []string{"a", "b"}},
		{"subtransaction aborted after appending again", []spoolOp{add(101, "x"), abortSub(101), add(101, "y"), add(top, "z")},
			[]string{"y", "z"}},
		{"everything aborted", []spoolOp{add(101, "x"), abortSub(101)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp, err := newSpool(t.TempDir(), top)
			if err != nil {
				t.Fatal(err)
			}
			defer sp.remove()
			lsn := pglogrepl.LSN(1000)
			walOf := map[string]pglogrepl.LSN{}
			for _, op := range tt.ops {
				if op.abort {
					if err := sp.abortSub(op.xid); err != nil {
						t.Fatal(err)
					}
					continue
				}
				lsn += 10
				walOf[op.body] = lsn
				// The body is long enough that some records straddle the
				// write buffer.
				if err := sp.append(op.xid, lsn, 'I', []byte(op.body+strings.Repeat(".", 30000))); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			err = sp.replay(func(walStart pglogrepl.LSN, data []byte) error {
				if data[0] != 'I' {
					return fmt.Errorf("type %q, want I", data[0])
				}
				body := strings.TrimRight(string(data[1:]), ".")
				if walStart != walOf[body] {
					return fmt.Errorf("%s replayed at %s, appended at %s", body, walStart, walOf[body])
				}
				got = append(got, body)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("replayed %v, want %v", got, tt.want)
			}
			st, err := os.Stat(sp.path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != sp.size || sp.n != len(tt.want) {
				t.Errorf("file %d bytes, spool says %d bytes, %d records", st.Size(), sp.size, sp.n)
			}
		})
	}
}

func TestSpools(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "not", "there", "yet")
	ss := newSpools(parent, 7)
	if _, _, err := ss.start(1, false); err == nil {
		t.Error("a later block of an unknown transaction was accepted")
	}
	a, created, err := ss.start(1, true)
	if err != nil || !created {
		t.Fatalf("start: %v created %v", err, created)
	}
	if st, err := os.Stat(ss.dir); err != nil || st.Mode().Perm() != 0o700 || !strings.HasPrefix(filepath.Base(ss.dir), "rosetta-spool-7-") {
		t.Fatalf("spool directory %s: %v %v", ss.dir, st, err)
	}
	if _, _, err := ss.start(1, true); err == nil {
		t.Error("a transaction started twice")
	}
	if again, created, err := ss.start(1, false); err != nil || created || again != a {
		t.Errorf("second block: %v created %v same %v", err, created, again == a)
	}
	b, _, err := ss.start(2, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.append(1, 10, 'I', []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := b.append(2, 20, 'I', []byte("b")); err != nil {
		t.Fatal(err)
	}
	// Abort of a transaction: its file goes.
	if gone, err := ss.abort(2, 2); err != nil || gone != b {
		t.Fatalf("abort: %v", err)
	}
	if _, err := os.Stat(b.path); !os.IsNotExist(err) {
		t.Errorf("aborted transaction's spool still there: %v", err)
	}
	if gone, err := ss.abort(99, 99); err != nil || gone != nil {
		t.Errorf("abort of an unknown transaction: %v %v", gone, err)
	}
	// The session's end removes the directory with the open spools.
	if err := ss.close(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

// TestSpoolWriteError: a spool that cannot be written (disk full, here a
// closed file) fails with the file and the transaction named.
func TestSpoolWriteError(t *testing.T) {
	sp, err := newSpool(t.TempDir(), 42)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(sp.path)
	sp.f.Close()
	err = sp.append(42, 1, 'I', make([]byte, 128<<10))
	if err == nil || !strings.Contains(err.Error(), sp.path) || !strings.Contains(err.Error(), "transaction 42") {
		t.Fatalf("error %v, want one naming %s and transaction 42", err, sp.path)
	}
}
