package snapshot

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/pgcatalog"
	"github.com/rosettacdc/rosetta/pkg/pgrepl"
)

// sessionParams are the settings capture pins on its replication
// connection (they shape PostgreSQL's text output of values); a snapshot
// reads with the same ones so that its values are spelled the same.
var sessionParams = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, MDY",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "1",
	"bytea_output":       "hex",
	"lc_monetary":        "C",
	"application_name":   "rosetta-backfill",
}

// Session reads one table of one source: a normal connection for the
// rows and the catalog, and a replication connection that creates the
// temporary slots whose exported snapshots the batches are read in. It is
// used by one goroutine.
type Session struct {
	sourceID int64
	conn     *pgx.Conn
	rconn    *pgconn.PgConn
	dec      *pgrepl.Decoder
	table    Table
	slotBase string
	batches  int
}

// Open connects to the source at ep and loads schema.name. tag goes into
// the names of the temporary slots (e.g. the job id).
func Open(ctx context.Context, ep pgcatalog.Endpoint, sourceID int64, schema, name, tag string) (*Session, error) {
	cfg, err := ep.ConnConfig()
	if err != nil {
		return nil, fmt.Errorf("source %d connection settings (host %s, port %d, database %s) do not parse", sourceID, ep.Host, ep.Port, ep.Database)
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	rcfg := cfg.Config.Copy()
	rcfg.RuntimeParams["replication"] = "database"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to source %d: %w", sourceID, err)
	}
	s := &Session{sourceID: sourceID, conn: conn}
	rconn, err := pgconn.ConnectConfig(ctx, rcfg)
	if err != nil {
		s.Close(ctx)
		return nil, fmt.Errorf("open replication connection to source %d: %w", sourceID, err)
	}
	s.rconn = rconn
	if s.table, err = LoadTable(ctx, conn, schema, name); err != nil {
		s.Close(ctx)
		return nil, err
	}
	s.dec = pgrepl.NewDecoder(sourceID, ep.Database, pgrepl.NewCatalogResolver(conn))
	if _, err := s.dec.Decode(ctx, 0, s.table.relationMessage()); err != nil {
		s.Close(ctx)
		return nil, fmt.Errorf("describe %s.%s: %w", schema, name, err)
	}
	s.slotBase = "rosetta_snap_" + sanitizeTag(tag) + "_" + strconv.FormatInt(time.Now().UnixNano()%1_000_000_000, 36)
	return s, nil
}

func sanitizeTag(tag string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(tag) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		}
	}
	s := b.String()
	if len(s) > 20 {
		s = s[:20]
	}
	return s
}

// Table is the table being read.
func (s *Session) Table() Table { return s.table }

// Conn is the normal connection, for catalog checks between batches.
func (s *Session) Conn() *pgx.Conn { return s.conn }

// Close closes both connections (dropping any temporary slot left).
func (s *Session) Close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if s.rconn != nil {
		s.rconn.Close(ctx)
	}
	if s.conn != nil {
		s.conn.Close(ctx)
	}
}

// Batch is the rows of one batch as messages ready to publish: version 2
// messages of up to contracts.ChunkChanges rows each, a partition's in
// primary key order (Encoder).
type Batch struct {
	// ConsistentPoint is the commit_lsn of every change of the batch.
	ConsistentPoint string
	Msgs            []*nats.Msg
	// Rows is how many rows (op "r" changes) Msgs hold.
	Rows int
	// LastKey is the last row's primary key values (text), the resume
	// point once the batch is published.
	LastKey []string
}

// ReadBatch reads at most limit rows after lastKey matching filters, in
// one exported snapshot, within timeout, and encodes them with enc. The
// temporary slot exporting the snapshot lives only while the batch is
// read (see docs/backfill.md for why per-batch snapshots are still
// consistent).
func (s *Session) ReadBatch(ctx context.Context, enc *Encoder, filters []Filter, lastKey []string, limit int, timeout time.Duration) (Batch, error) {
	t := s.table
	query, args, err := BatchQuery(t, filters, lastKey, limit)
	if err != nil {
		return Batch{}, err
	}
	s.batches++
	slot := s.slotBase + "_" + strconv.Itoa(s.batches)
	res, err := pglogrepl.CreateReplicationSlot(ctx, s.rconn, slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return Batch{}, fmt.Errorf("create temporary slot %s: %w", slot, err)
	}
	defer func() {
		// Dropping it ends the exported snapshot; a failure leaves the
		// temporary slot until the session closes.
		_ = pglogrepl.DropReplicationSlot(context.WithoutCancel(ctx), s.rconn, slot, pglogrepl.DropReplicationSlotOptions{})
	}()
	cp, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return Batch{}, fmt.Errorf("slot %s consistent point: %w", slot, err)
	}
	pc := s.conn.PgConn()
	begin := "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT " + quoteLiteral(res.SnapshotName) +
		"; SET LOCAL statement_timeout = " + strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)
	if _, err := pc.Exec(ctx, begin).ReadAll(); err != nil {
		_, _ = pc.Exec(context.WithoutCancel(ctx), "ROLLBACK").ReadAll()
		return Batch{}, fmt.Errorf("begin snapshot transaction on %s.%s: %w", t.Schema, t.Name, err)
	}
	b, err := s.read(ctx, pc, enc, query, args, cp)
	if err != nil {
		_, _ = pc.Exec(context.WithoutCancel(ctx), "ROLLBACK").ReadAll()
		return Batch{}, fmt.Errorf("read batch of %s.%s: %w", t.Schema, t.Name, err)
	}
	if _, err := pc.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		return Batch{}, fmt.Errorf("end snapshot transaction on %s.%s: %w", t.Schema, t.Name, err)
	}
	return b, nil
}

func (s *Session) read(ctx context.Context, pc *pgconn.PgConn, enc *Encoder, query string, args [][]byte, cp pglogrepl.LSN) (Batch, error) {
	t := s.table
	b := Batch{ConsistentPoint: contracts.FormatLSN(uint64(cp))}
	// A batch's messages are its own: none holds rows of another batch,
	// so a batch re-read after a crash is cut the same way (Encoder).
	enc.Reset()
	now := time.Now().UTC()
	if _, err := s.dec.Decode(ctx, cp, &pglogrepl.BeginMessage{FinalLSN: cp, CommitTime: now}); err != nil {
		return b, err
	}
	// The decoder's transaction always ends, even on an error.
	defer s.dec.Decode(ctx, cp, &pglogrepl.CommitMessage{CommitLSN: cp}) //nolint:errcheck
	// One tuple reused for every row: the decoder copies what it keeps.
	cols := make([]pglogrepl.TupleDataColumn, len(t.Columns))
	tuple := &pglogrepl.TupleData{ColumnNum: uint16(len(t.Columns)), Columns: make([]*pglogrepl.TupleDataColumn, len(t.Columns))}
	for i := range cols {
		tuple.Columns[i] = &cols[i]
	}
	insert := &pglogrepl.InsertMessage{RelationID: t.OID, Tuple: tuple}
	var key []string
	rr := pc.ExecParams(ctx, query, args, nil, nil, nil) // text in, text out
	for rr.NextRow() {
		vals := rr.Values()
		if len(vals) != len(t.Columns) {
			rr.Close()
			return b, fmt.Errorf("row has %d values for %d columns", len(vals), len(t.Columns))
		}
		for i, v := range vals {
			if v == nil {
				cols[i] = pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeNull}
				continue
			}
			cols[i] = pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeText, Length: uint32(len(v)), Data: v}
		}
		out, err := s.dec.Decode(ctx, cp, insert)
		if err != nil {
			rr.Close()
			return b, err
		}
		key = make([]string, len(t.Key))
		for i, k := range t.Key {
			key[i] = string(vals[k])
		}
		for i := range out {
			c := &out[i]
			// Same row as capture would emit, stamped as a snapshot read
			// at the consistent point (seq 0: before any transaction
			// committing there).
			c.Op = contracts.OpRead
			c.Source.Snapshot = true
			c.Source.Seq = 0
			c.Source.TxID = 0
			c.Source.LSN = b.ConsistentPoint
			c.Source.CommitLSN = b.ConsistentPoint
			if err := enc.Add(c, key); err != nil {
				rr.Close()
				return b, err
			}
			b.Rows++
		}
	}
	if _, err := rr.Close(); err != nil {
		return b, err
	}
	b.Msgs = enc.Flush()
	b.LastKey = key
	return b, nil
}

// quoteLiteral quotes a string literal (the snapshot name, which SET
// TRANSACTION SNAPSHOT does not take as a parameter).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// EstimateRows is the planner's row estimate for the table, or -1 when
// the table was never analyzed.
func (s *Session) EstimateRows(ctx context.Context) (int64, error) {
	var n float64
	if err := s.conn.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = $1`, s.table.OID).Scan(&n); err != nil {
		return 0, fmt.Errorf("estimate rows of %s.%s: %w", s.table.Schema, s.table.Name, err)
	}
	return int64(n), nil
}

// CountRows counts the rows matching filters within timeout.
func (s *Session) CountRows(ctx context.Context, filters []Filter, timeout time.Duration) (int64, error) {
	q, args, err := CountQuery(s.table, filters)
	if err != nil {
		return 0, err
	}
	var n int64
	err = pgx.BeginTxFunc(ctx, s.conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = "+strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)); err != nil {
			return err
		}
		anyArgs := make([]any, len(args))
		for i, a := range args {
			anyArgs[i] = string(a)
		}
		return tx.QueryRow(ctx, q, anyArgs...).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("count rows of %s.%s: %w", s.table.Schema, s.table.Name, err)
	}
	return n, nil
}
