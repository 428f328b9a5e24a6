package duckdb

import (
	"bufio"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/rosettacdc/rosetta/pkg/cdc/cdctest"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// The test binary doubles as the "other process" reading the file: run
// with these variables set, it opens the file read-only, prints the row
// count of sink.items ("count=N", or "error=…"), optionally holds the file
// for a while ("ready" once it holds it), and exits.
const (
	readerPathEnv = "ROSETTA_DUCKDB_TEST_READER_PATH"
	readerHoldEnv = "ROSETTA_DUCKDB_TEST_READER_HOLD"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(readerPathEnv); path != "" {
		os.Exit(readerProcess(path, os.Getenv(readerHoldEnv)))
	}
	os.Exit(m.Run())
}

func readerProcess(path, hold string) int {
	c, err := duckdb.NewConnector(path+"?access_mode=READ_ONLY", nil)
	if err != nil {
		fmt.Printf("error=%s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 0
	}
	db := sql.OpenDB(c)
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sink.items`).Scan(&n); err != nil {
		fmt.Printf("error=%s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 0
	}
	fmt.Printf("count=%d\n", n)
	if d, err := time.ParseDuration(hold); err == nil {
		fmt.Println("ready")
		time.Sleep(d)
	}
	return 0
}

func readerCmd(t *testing.T, path, hold string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), readerPathEnv+"="+path, readerHoldEnv+"="+hold)
	cmd.Stderr = os.Stderr
	return cmd
}

// readOnce runs a reader process and returns the row count it read, or the
// error it got opening the file.
func readOnce(t *testing.T, path string) (int, error) {
	t.Helper()
	out, err := readerCmd(t, path, "").Output()
	if err != nil {
		t.Fatalf("reader process: %v", err)
	}
	line := strings.TrimSpace(string(out))
	if msg, ok := strings.CutPrefix(line, "error="); ok {
		return 0, errors.New(msg)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(line, "count="))
	if err != nil {
		t.Fatalf("reader process printed %q", line)
	}
	return n, nil
}

// holdFile starts a reader process that holds the file read-only for hold
// and returns once it does; the returned func waits for it to exit.
func holdFile(t *testing.T, path string, hold time.Duration) func() {
	t.Helper()
	cmd := readerCmd(t, path, hold.String())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "ready" {
			done := make(chan struct{})
			go func() { defer close(done); _, _ = io.Copy(io.Discard, stdout); _ = cmd.Wait() }()
			wait := func() { <-done }
			t.Cleanup(wait)
			return wait
		}
	}
	_ = cmd.Wait()
	t.Fatalf("reader process did not get the file: %q", lines)
	return nil
}

func countItems(t *testing.T, e *env, want int) {
	t.Helper()
	n, err := readOnce(t, e.path)
	if err != nil {
		t.Fatalf("read-only process between batches: %v", err)
	}
	if n != want {
		t.Fatalf("read-only process read %d rows, want %d", n, want)
	}
}

// TestReadersBetweenBatches: another process can open the file read-only
// whenever the driver has released it, and the driver waits for a reader
// that holds it.
func TestReadersBetweenBatches(t *testing.T) {
	t.Parallel()
	it := ev{Table: "items", Columns: itemCols}

	t.Run("held while busy", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, map[string]any{"release_after": "10m"})
		e.mustApply(it.Ins(10, 1, "a"))
		if _, err := readOnce(t, e.path); err == nil || !strings.Contains(err.Error(), "lock") {
			t.Fatalf("read-only open while the driver holds the file: %v; want a lock error", err)
		}
		if err := e.drv.Close(); err != nil {
			t.Fatal(err)
		}
		countItems(t, e, 1)
	})

	t.Run("released after every batch", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, map[string]any{"release_after": "0s"})
		e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"))
		countItems(t, e, 2)
		e.mustApply(it.Ins(11, 3, "c"))
		countItems(t, e, 3)
	})

	t.Run("released when idle", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, map[string]any{"release_after": "50ms"})
		e.mustApply(it.Ins(10, 1, "a"))
		cdctest.WaitFor(t, "the idle file to be readable", 20*time.Second, func() bool {
			n, err := readOnce(t, e.path)
			return err == nil && n == 1
		})
	})

	t.Run("released after max_hold while batches keep coming", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, map[string]any{"release_after": "10m", "max_hold": "100ms", "reader_window": "200ms"})
		// Batches keep coming far more often than release_after: only
		// max_hold releases the file. Which batch outlasts max_hold
		// depends on how fast the machine applies them, so a reader
		// tries after each until one gets in (a fixed sleep raced a slow
		// first apply: the release came after it, and the reopened file
		// was held again when the reader came).
		for i := 1; ; i++ {
			e.mustApply(it.Ins(uint64(10+i), i, "x"))
			if n, err := readOnce(t, e.path); err == nil {
				if n != i {
					t.Fatalf("reader between batches read %d rows after %d batches", n, i)
				}
				break
			}
			if i == 200 {
				t.Fatal("200 batches in a row held the file: max_hold never released it")
			}
			time.Sleep(20 * time.Millisecond)
		}
		e.mustApply(it.Ins(1000, 1000, "after"))
		e.expect(`SELECT count(*) FROM sink.items WHERE id = 1000`, "1")
	})

	t.Run("waits for a reader holding the file", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, map[string]any{"release_after": "0s", "lock_timeout": "30s"})
		e.mustApply(it.Ins(10, 1, "a"))
		wait := holdFile(t, e.path, 1500*time.Millisecond)
		e.mustApply(it.Ins(11, 2, "b"))
		wait()
		countItems(t, e, 2)
	})

	t.Run("a reader holding the file longer than lock_timeout is a transient error", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, map[string]any{"release_after": "0s", "lock_timeout": "100ms"})
		e.mustApply(it.Ins(10, 1, "a"))
		wait := holdFile(t, e.path, 3*time.Second)
		err := e.apply(it.Ins(11, 2, "b"))
		if err == nil || sinkrunner.IsPermanent(err) || !strings.Contains(err.Error(), "lock") {
			t.Fatalf("apply while a reader holds the file: %v; want a transient lock error", err)
		}
		wait()
		e.mustApply(it.Ins(11, 2, "b"))
		countItems(t, e, 2)
	})
}
