package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/jackc/pglogrepl"
)

// A spool holds the messages PostgreSQL streamed for one in-progress
// top-level transaction (pgoutput protocol version 2), on disk, until the
// transaction's Stream Commit replays them or its Stream Abort drops them.
// Nothing of a streamed transaction is published before its commit: the
// stream's consumers only ever see committed changes.
//
// Each record is the message's WAL position (8 bytes), its length
// (4 bytes) and the message in version 1 shape: the (sub)transaction id
// that version 2 puts after the type byte inside a stream block is taken
// out, so replay parses it like any message of a whole transaction.
// Relation and Type messages are spooled too, in order, so a schema change
// inside the transaction describes the rows after it (PostgreSQL's own
// apply worker spools the same way).
//
// Only the write buffer is in memory, whatever the transaction's size.
// A spool belongs to one replication session; PostgreSQL streams an
// uncommitted transaction again from its start after a reconnect.
type spool struct {
	xid  uint32
	path string
	f    *os.File
	w    *bufio.Writer
	size int64 // bytes appended, buffered ones included
	n    int   // records appended
	// subs are the subtransactions with a message in the spool, in the
	// order of their first message: subtransactions nest, so everything
	// after a subtransaction's first message belongs to it, to a child of
	// it or to a later sibling, all of which it takes along when it aborts
	// (PostgreSQL sends an abort for each of them as well).
	subs []subxact
}

type subxact struct {
	xid uint32
	off int64 // spool size before its first message
	n   int   // records before its first message
}

const spoolHeader = 12 // walStart (8) + length (4)

func newSpool(dir string, xid uint32) (*spool, error) {
	f, err := os.CreateTemp(dir, "xid-"+strconv.FormatUint(uint64(xid), 10)+"-*.spool")
	if err != nil {
		return nil, fmt.Errorf("create spool of streamed transaction %d in %s: %w", xid, dir, err)
	}
	return &spool{xid: xid, path: f.Name(), f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// append records one message of subtransaction subxid (xid itself for the
// top-level transaction's own messages): typ is its type byte, body what
// follows the (sub)transaction id.
func (s *spool) append(subxid uint32, walStart pglogrepl.LSN, typ byte, body []byte) error {
	if subxid != s.xid && !s.hasSub(subxid) {
		s.subs = append(s.subs, subxact{xid: subxid, off: s.size, n: s.n})
	}
	var h [spoolHeader + 1]byte
	binary.BigEndian.PutUint64(h[:8], uint64(walStart))
	binary.BigEndian.PutUint32(h[8:12], uint32(len(body)+1))
	h[12] = typ
	if _, err := s.w.Write(h[:]); err != nil {
		return s.writeErr(err)
	}
	if _, err := s.w.Write(body); err != nil {
		return s.writeErr(err)
	}
	s.size += int64(len(h) + len(body))
	s.n++
	return nil
}

func (s *spool) writeErr(err error) error {
	return fmt.Errorf("write spool %s of streamed transaction %d: %w", s.path, s.xid, err)
}

// hasSub reports whether subxid has a message in the spool. Messages of
// one subtransaction come in runs, so the last one is checked first.
func (s *spool) hasSub(subxid uint32) bool {
	for i := len(s.subs) - 1; i >= 0; i-- {
		if s.subs[i].xid == subxid {
			return true
		}
	}
	return false
}

// abortSub drops subtransaction subxid's messages: the spool is cut back
// to its first message, and the subtransactions recorded after it are
// forgotten (they are its children or later siblings, whose messages were
// all after that point too). A subxid without messages changes nothing.
func (s *spool) abortSub(subxid uint32) error {
	i := -1
	for j := range s.subs {
		if s.subs[j].xid == subxid {
			i = j
			break
		}
	}
	if i < 0 {
		return nil
	}
	sub := s.subs[i]
	if err := s.w.Flush(); err != nil {
		return s.writeErr(err)
	}
	if err := s.f.Truncate(sub.off); err != nil {
		return fmt.Errorf("truncate spool %s of streamed transaction %d for aborted subtransaction %d: %w", s.path, s.xid, subxid, err)
	}
	if _, err := s.f.Seek(sub.off, io.SeekStart); err != nil {
		return fmt.Errorf("seek spool %s of streamed transaction %d: %w", s.path, s.xid, err)
	}
	s.w.Reset(s.f)
	s.size, s.n, s.subs = sub.off, sub.n, s.subs[:i]
	return nil
}

// replay calls fn with every record, in the order appended. data is only
// valid during the call. The spool is read through a buffer, never whole.
func (s *spool) replay(fn func(walStart pglogrepl.LSN, data []byte) error) error {
	if err := s.w.Flush(); err != nil {
		return s.writeErr(err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("seek spool %s of streamed transaction %d: %w", s.path, s.xid, err)
	}
	r := bufio.NewReaderSize(io.LimitReader(s.f, s.size), 256<<10)
	var h [spoolHeader]byte
	var buf []byte
	for i := 0; i < s.n; i++ {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return fmt.Errorf("read spool %s of streamed transaction %d, record %d of %d: %w", s.path, s.xid, i, s.n, err)
		}
		walStart := pglogrepl.LSN(binary.BigEndian.Uint64(h[:8]))
		l := int(binary.BigEndian.Uint32(h[8:]))
		if cap(buf) < l {
			buf = make([]byte, l)
		}
		buf = buf[:l]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("read spool %s of streamed transaction %d, record %d of %d: %w", s.path, s.xid, i, s.n, err)
		}
		if err := fn(walStart, buf); err != nil {
			return err
		}
	}
	return nil
}

// remove closes and deletes the spool's file.
func (s *spool) remove() error {
	return errors.Join(s.f.Close(), os.Remove(s.path))
}

// spools are a session's open streamed transactions, by top-level xid,
// in a directory of the session's own, made when the first transaction
// streams and removed with everything in it when the session ends.
type spools struct {
	parent string // where the directory goes; "" is os.TempDir()
	prefix string // of the directory's name
	dir    string
	open   map[uint32]*spool
}

func newSpools(parent string, sourceID int64) *spools {
	return &spools{parent: parent, prefix: "rosetta-spool-" + strconv.FormatInt(sourceID, 10) + "-",
		open: make(map[uint32]*spool)}
}

// start returns the spool of xid for a stream block: a new one on the
// transaction's first block, the existing one after that.
func (ss *spools) start(xid uint32, first bool) (sp *spool, created bool, err error) {
	sp, ok := ss.open[xid]
	switch {
	case first && ok:
		return nil, false, fmt.Errorf("streamed transaction %d started twice", xid)
	case !first && !ok:
		return nil, false, fmt.Errorf("stream block of transaction %d, whose first block this session did not receive", xid)
	case ok:
		return sp, false, nil
	}
	if ss.dir == "" {
		parent := ss.parent
		if parent == "" {
			parent = os.TempDir()
		}
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return nil, false, fmt.Errorf("create spool directory %s for streamed transaction %d: %w", parent, xid, err)
		}
		// MkdirTemp makes it 0700: spooled rows are source data.
		dir, err := os.MkdirTemp(parent, ss.prefix+"*")
		if err != nil {
			return nil, false, fmt.Errorf("create spool directory in %s for streamed transaction %d: %w", parent, xid, err)
		}
		ss.dir = dir
	}
	sp, err = newSpool(ss.dir, xid)
	if err != nil {
		return nil, false, err
	}
	ss.open[xid] = sp
	return sp, true, nil
}

// abort handles Stream Abort: the whole transaction when subxid is xid,
// else one subtransaction of it. An xid without a spool changes nothing
// (PostgreSQL aborts only what it streamed, but says so for each
// subtransaction of an abort).
func (ss *spools) abort(xid, subxid uint32) (removed *spool, err error) {
	sp, ok := ss.open[xid]
	if !ok {
		return nil, nil
	}
	if subxid != xid {
		return nil, sp.abortSub(subxid)
	}
	delete(ss.open, xid)
	return sp, sp.remove()
}

// take hands xid's spool over for replay: the caller removes it.
func (ss *spools) take(xid uint32) *spool {
	sp := ss.open[xid]
	delete(ss.open, xid)
	return sp
}

// close removes every spool and the directory.
func (ss *spools) close() error {
	var errs []error
	for xid, sp := range ss.open {
		errs = append(errs, sp.remove())
		delete(ss.open, xid)
	}
	if ss.dir != "" {
		errs = append(errs, os.RemoveAll(ss.dir))
		ss.dir = ""
	}
	return errors.Join(errs...)
}
