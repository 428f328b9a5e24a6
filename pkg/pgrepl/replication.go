package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// StartReplication puts conn, a replication connection
// (replication=database), into streaming mode on a pgoutput slot with
// protocol version 1 (whole transactions, sent after they commit) for
// publication. start is where to resume; PostgreSQL never goes back before
// the slot's confirmed position, and 0 means "from there".
func StartReplication(ctx context.Context, conn *pgconn.PgConn, slot, publication string, start pglogrepl.LSN) error {
	_, err := StartReplicationWith(ctx, conn, slot, publication, start, ReplicationOptions{})
	return err
}

// ReplicationOptions choose how pgoutput sends transactions.
type ReplicationOptions struct {
	// Streaming asks for protocol version 2 with streaming of in-progress
	// transactions when the server has it (PostgreSQL 14 and later): a
	// transaction larger than the server's logical_decoding_work_mem is
	// sent in Stream Start .. Stream Stop blocks while it runs, then
	// Stream Commit or Stream Abort, instead of being decoded (and spilled
	// to disk on the server) only once it committed. The receiver must
	// hold the blocks until the commit.
	Streaming bool
}

// StreamingMinVersion is the first server_version_num whose pgoutput
// streams in-progress transactions (protocol version 2).
const StreamingMinVersion = 140000

// StartReplicationWith is StartReplication with options. streaming reports
// whether the server streams in-progress transactions on this connection:
// only then may Stream messages arrive.
func StartReplicationWith(ctx context.Context, conn *pgconn.PgConn, slot, publication string, start pglogrepl.LSN,
	opts ReplicationOptions) (streaming bool, err error) {
	if err := ValidateSlotName(slot); err != nil {
		return false, err
	}
	// pgoutput splits publication_names like an identifier list, so the
	// name goes in quoted as an identifier, inside a string literal.
	pubs := "'" + strings.ReplaceAll(pgx.Identifier{publication}.Sanitize(), "'", "''") + "'"
	args := []string{"proto_version '1'", "publication_names " + pubs}
	if opts.Streaming && ServerVersionNum(conn) >= StreamingMinVersion {
		args = []string{"proto_version '2'", "publication_names " + pubs, "streaming 'on'"}
		streaming = true
	}
	err = pglogrepl.StartReplication(ctx, conn, slot, start, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: args,
	})
	if err != nil {
		return false, fmt.Errorf("start replication on slot %s from %s: %w", slot, start, err)
	}
	return streaming, nil
}

// ServerVersionNum is the server's version as server_version_num would
// give it (150004 for 15.4), read from the server_version parameter every
// connection reports at startup; 0 when it does not parse.
func ServerVersionNum(conn *pgconn.PgConn) int {
	return parseServerVersion(conn.ParameterStatus("server_version"))
}

// parseServerVersion reads "15.4", "14beta1", "16.1 (Debian 16.1-1)" and
// the pre-10 "9.6.24" form.
func parseServerVersion(v string) int {
	num := func(s string) (int, string) {
		n, i := 0, 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			n = n*10 + int(s[i]-'0')
		}
		if i == 0 {
			return -1, s
		}
		return n, s[i:]
	}
	major, rest := num(v)
	if major < 0 {
		return 0
	}
	minor := 0
	if strings.HasPrefix(rest, ".") {
		if m, r := num(rest[1:]); m >= 0 {
			minor, rest = m, r
		}
	}
	if major >= 10 {
		return major*10000 + minor
	}
	// 9.6.24: major 9.6, minor 24.
	patch := 0
	if strings.HasPrefix(rest, ".") {
		if p, _ := num(rest[1:]); p >= 0 {
			patch = p
		}
	}
	return major*10000 + minor*100 + patch
}

// StreamMessage is one message of a replication stream: exactly one of
// XLogData and Keepalive is set.
type StreamMessage struct {
	XLogData  *pglogrepl.XLogData
	Keepalive *pglogrepl.PrimaryKeepaliveMessage
}

// ErrStreamEnded means the server ended the copy-both stream.
var ErrStreamEnded = errors.New("replication stream ended by the server")

// ReceiveMessage waits until deadline for the next message of a streaming
// replication connection. ok is false when the deadline passed first; the
// connection then stays usable. XLogData.WALData is only valid until the
// next call: decode it (pglogrepl.Parse copies what it keeps) before that.
//
// The deadline is the socket's read deadline, not a context per message:
// capture calls this once per pgoutput message, and a context with a
// deadline (its timer) plus pgconn's watch of it cost 11 allocations per
// call where the socket deadline and the watch of ctx alone cost 4. A read
// that times out leaves the connection usable (pgconn keeps a partly read
// message); ctx's cancellation still interrupts the wait. The deadline is
// cleared on return, so that other reads on conn are not bounded by it.
func ReceiveMessage(ctx context.Context, conn *pgconn.PgConn, deadline time.Time) (m StreamMessage, ok bool, err error) {
	if err := conn.Conn().SetReadDeadline(deadline); err != nil {
		return StreamMessage{}, false, fmt.Errorf("receive replication message: set read deadline: %w", err)
	}
	defer conn.Conn().SetReadDeadline(time.Time{}) //nolint:errcheck // a closed connection fails the next call anyway
	for {
		raw, err := conn.ReceiveMessage(ctx)
		if err != nil {
			if ctx.Err() == nil && pgconn.Timeout(err) {
				return StreamMessage{}, false, nil
			}
			if ctx.Err() != nil {
				return StreamMessage{}, false, ctx.Err()
			}
			return StreamMessage{}, false, fmt.Errorf("receive replication message: %w", err)
		}
		switch raw := raw.(type) {
		case *pgproto3.CopyData:
			if len(raw.Data) == 0 {
				continue
			}
			switch raw.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				k, err := pglogrepl.ParsePrimaryKeepaliveMessage(raw.Data[1:])
				if err != nil {
					return StreamMessage{}, false, fmt.Errorf("parse keepalive: %w", err)
				}
				return StreamMessage{Keepalive: &k}, true, nil
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(raw.Data[1:])
				if err != nil {
					return StreamMessage{}, false, fmt.Errorf("parse xlog data: %w", err)
				}
				return StreamMessage{XLogData: &x}, true, nil
			}
		case *pgproto3.ErrorResponse:
			return StreamMessage{}, false, fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(raw))
		case *pgproto3.CopyDone:
			return StreamMessage{}, false, ErrStreamEnded
		}
		// Notices and parameter statuses carry nothing for us.
	}
}

// SendStatus tells the server that everything before lsn is durably taken
// care of (written, flushed, applied): the slot may release WAL up to it
// and will not send transactions that committed before it again. Callers
// pass only positions whose changes are durable downstream.
func SendStatus(ctx context.Context, conn *pgconn.PgConn, lsn pglogrepl.LSN, replyRequested bool) error {
	err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: lsn,
		WALFlushPosition: lsn,
		WALApplyPosition: lsn,
		ClientTime:       time.Now(),
		ReplyRequested:   replyRequested,
	})
	if err != nil {
		return fmt.Errorf("send standby status %s: %w", lsn, err)
	}
	return nil
}
