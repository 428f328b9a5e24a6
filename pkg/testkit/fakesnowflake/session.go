package fakesnowflake

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Snowflake statement type ids (the driver decides Exec row counts from them: only
// 0x3000–0x3500 count as DML).
const (
	stmtSelect   int64 = 0x1000
	stmtInsert   int64 = 0x3100
	stmtUpdate   int64 = 0x3200
	stmtDelete   int64 = 0x3300
	stmtMerge    int64 = 0x3400
	stmtCopy     int64 = 0x3600
	stmtAltSess  int64 = 0x4100
	stmtUse      int64 = 0x4300
	stmtList     int64 = 0x4701
	stmtBegin    int64 = 0x5100
	stmtCommit   int64 = 0x5200
	stmtRollback int64 = 0x5300
	stmtDDL      int64 = 0x6000
	stmtPut      int64 = 0x7102
	stmtRemove   int64 = 0x7103
)

// tempTable is a session's temporary table. DuckDB keeps temp tables in its "temp"
// catalog, so qualified Snowflake references to them are rewritten.
type tempTable struct{ db, schema, name string }

func tempKey(db, schema, name string) string { return db + "\x00" + schema + "\x00" + name }

// session is one logged-in client session with its own DuckDB connection, so temp
// tables and transactions are per session as in Snowflake.
type session struct {
	srv         *Server
	id          int64
	user        string
	token       string // guarded by srv.mu
	masterToken string
	expiry      atomic.Int64 // unix nanos

	mu        sync.Mutex // one statement at a time, as the driver does per connection
	conn      *sql.Conn
	closed    bool
	database  string
	schema    string
	warehouse string
	role      string
	inTx      bool
	txAborted bool // a statement failed inside the open transaction (see execute)
	temps     map[string]tempTable
	params    map[string]string // session parameters (params.go)
}

func (ss *session) setExpiry(t time.Time) { ss.expiry.Store(t.UnixNano()) }
func (ss *session) expiresAt() time.Time  { return time.Unix(0, ss.expiry.Load()) }

// init points the DuckDB connection at the session's database and schema. A missing
// database or schema does not fail the login (Snowflake logs in and fails later
// statements); the session then falls back to the database's MAIN schema.
func (ss *session) init(ctx context.Context) error {
	return ss.use(ctx, ss.database, ss.schema, false)
}

// use switches the current database/schema; strict fails on missing objects.
func (ss *session) use(ctx context.Context, db, schema string, strict bool) error {
	if _, err := ss.conn.ExecContext(ctx, "USE "+quoteIdent(db)+"."+quoteIdent(schema)); err != nil {
		if strict {
			return &sfError{code: "002043", sqlState: "02000",
				msg: fmt.Sprintf("SQL compilation error:\nObject does not exist, or operation cannot be performed. (schema %s.%s: %v)", db, schema, duckMessage(err))}
		}
		if _, err2 := ss.conn.ExecContext(ctx, "USE "+quoteIdent(db)); err2 != nil {
			ss.srv.log.Info("fakesnowflake: session has no usable database", "database", db, "err", err2)
		}
	}
	ss.database, ss.schema = db, schema
	return nil
}

func (ss *session) close() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return nil
	}
	ss.closed = true
	// The DuckDB connection must not go back to the pool: it holds the
	// session's temporary tables and any open transaction. ErrBadConn makes
	// database/sql close it, which drops them and rolls the transaction
	// back, as Snowflake does when a session ends.
	_ = ss.conn.Raw(func(any) error { return driver.ErrBadConn })
	err := ss.conn.Close()
	_ = os.RemoveAll(ss.srv.sessionStageRoot(ss.id))
	if err != nil {
		return fmt.Errorf("fakesnowflake: close session %d: %w", ss.id, err)
	}
	return nil
}

// result is what a statement produced, before JSON encoding.
type result struct {
	columns  []column
	rows     [][]*string
	stmtType int64
	transfer map[string]any // PUT: the upload command for the client
}

// column is one entry of the rowtype.
type column struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Precision int64  `json:"precision"`
	Scale     int64  `json:"scale"`
	Length    int64  `json:"length"`
	Nullable  bool   `json:"nullable"`
}

func (r *result) toJSON(queryID string, ss *session) map[string]any {
	rowset := r.rows
	if rowset == nil {
		rowset = [][]*string{}
	}
	cols := r.columns
	if cols == nil {
		cols = []column{}
	}
	data := map[string]any{
		"parameters":         []any{},
		"rowtype":            cols,
		"rowset":             rowset,
		"total":              len(rowset),
		"returned":           len(rowset),
		"queryId":            queryID,
		"statementTypeId":    r.stmtType,
		"queryResultFormat":  "json",
		"version":            1,
		"finalDatabaseName":  ss.database,
		"finalSchemaName":    ss.schema,
		"finalWarehouseName": ss.warehouse,
		"finalRoleName":      ss.role,
	}
	for k, v := range r.transfer {
		data[k] = v
	}
	return data
}

func strp(s string) *string { return &s }

// statusResult is Snowflake's one-cell answer to DDL and session statements.
func statusResult(stmtType int64, msg string) *result {
	return &result{
		columns:  []column{{Name: "status", Type: "text", Length: 16777216, Nullable: true}},
		rows:     [][]*string{{strp(msg)}},
		stmtType: stmtType,
	}
}

// countResult is Snowflake's DML answer: one row of counts, one column per action.
func countResult(stmtType int64, names []string, counts []int64) *result {
	r := &result{stmtType: stmtType}
	row := make([]*string, len(names))
	for i, n := range names {
		r.columns = append(r.columns, column{Name: n, Type: "fixed", Precision: 19, Nullable: false})
		row[i] = strp(itoa(counts[i]))
	}
	r.rows = [][]*string{row}
	return r
}

// --- DuckDB access with transaction bookkeeping -----------------------------------

// duckErr records that a DuckDB statement failed. Inside an explicit transaction
// DuckDB then refuses everything but ROLLBACK, whereas Snowflake rolls back only the
// failed statement; see commit for how the difference is surfaced.
func (ss *session) duckErr(err error) error {
	if err != nil && ss.inTx {
		ss.txAborted = true
	}
	return err
}

func (ss *session) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := ss.conn.ExecContext(ctx, q, args...)
	return res, ss.duckErr(err)
}

// beginImplicit opens a transaction for a multi-step statement (COPY) when none is
// open, so it is atomic like a single Snowflake statement. The returned finish
// commits or rolls back.
func (ss *session) beginImplicit(ctx context.Context) (func(ok bool) error, error) {
	if ss.inTx {
		return func(bool) error { return nil }, nil
	}
	if _, err := ss.conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return nil, fmt.Errorf("begin implicit transaction: %w", err)
	}
	return func(ok bool) error {
		q := "COMMIT"
		if !ok {
			q = "ROLLBACK"
		}
		// A finished statement must not be cut short by a cancelled request context.
		if _, err := ss.conn.ExecContext(context.WithoutCancel(ctx), q); err != nil {
			return fmt.Errorf("%s implicit transaction: %w", strings.ToLower(q), err)
		}
		return nil
	}, nil
}

func (ss *session) begin(ctx context.Context) (*result, error) {
	if !ss.inTx { // Snowflake ignores BEGIN inside an open transaction
		if _, err := ss.conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
			return nil, err
		}
		ss.inTx, ss.txAborted = true, false
	}
	return statusResult(stmtBegin, "Statement executed successfully."), nil
}

// errTxAborted explains the one place where the fake cannot follow Snowflake.
var errTxAborted = &sfError{
	code: "000603", sqlState: "25P02",
	msg: "fakesnowflake: the transaction was rolled back because a statement in it failed. " +
		"Snowflake would roll back only that statement and commit the rest; DuckDB cannot, " +
		"so the fake refuses to pretend the COMMIT succeeded. Roll back explicitly after a failed statement.",
}

func (ss *session) commit(ctx context.Context) (*result, error) {
	if ss.inTx {
		aborted := ss.txAborted
		ss.inTx, ss.txAborted = false, false
		if aborted {
			_, _ = ss.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			return nil, errTxAborted
		}
		if _, err := ss.conn.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
			return nil, err
		}
	}
	return statusResult(stmtCommit, "Statement executed successfully."), nil
}

func (ss *session) rollback(ctx context.Context) (*result, error) {
	if ss.inTx {
		ss.inTx, ss.txAborted = false, false
		if _, err := ss.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
			return nil, err
		}
	}
	return statusResult(stmtRollback, "Statement executed successfully."), nil
}

// implicitCommit commits an open transaction before DDL, because in Snowflake DDL
// commits the current transaction (a driver that expects a ROLLBACK to undo earlier
// DML after DDL would be wrong there, and must be wrong here too).
func (ss *session) implicitCommit(ctx context.Context) error {
	if !ss.inTx {
		return nil
	}
	_, err := ss.commit(ctx)
	return err
}

// --- statement dispatch --------------------------------------------------------------

// execute runs one Snowflake statement. binds holds one argument row per execution
// (several for array binding).
func (ss *session) execute(ctx context.Context, sqlText string, binds [][]any) (_ *result, err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return nil, &sfError{code: codeSessionGone, sqlState: "08003", msg: "Session no longer exists."}
	}
	toks, err := lex(sqlText)
	if err != nil {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\n" + err.Error()}
	}
	for len(toks) > 0 && toks[len(toks)-1].isPunct(";") {
		toks = toks[:len(toks)-1]
	}
	if ss.paramTrue("QUOTED_IDENTIFIERS_IGNORE_CASE") {
		// Quoted identifiers fold to upper case like unquoted ones.
		for i := range toks {
			if toks[i].kind == tkQuoted {
				toks[i].val = strings.ToUpper(toks[i].val)
			}
		}
	}
	if d := ss.statementTimeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, errStatementTimeout)
		defer cancel()
		defer func() {
			if err != nil && context.Cause(ctx) == errStatementTimeout {
				err = errStatementTimeout
			}
		}()
	}
	if len(toks) == 0 {
		return nil, &sfError{code: "000900", sqlState: "42000", msg: "Empty SQL statement."}
	}
	for _, t := range toks {
		if t.isPunct(";") {
			return nil, unsupported("several statements in one request (multi-statement)")
		}
	}
	if len(binds) == 0 {
		binds = [][]any{nil}
	}
	first := toks[0].val
	if toks[0].isPunct("(") {
		first = "SELECT"
	}
	switch first {
	case "SELECT", "WITH", "VALUES", "FROM", "TABLE":
		return ss.runQuery(ctx, toks, binds)
	case "INSERT":
		return ss.writeChecked(ctx, toks, func() (*result, error) {
			return ss.runDML(ctx, toks, binds, stmtInsert, []string{"number of rows inserted"})
		})
	case "UPDATE":
		return ss.writeChecked(ctx, toks, func() (*result, error) {
			return ss.runDML(ctx, toks, binds, stmtUpdate, []string{"number of rows updated", "number of multi-joined rows updated"})
		})
	case "DELETE":
		return ss.runDML(ctx, toks, binds, stmtDelete, []string{"number of rows deleted"})
	case "MERGE":
		return ss.writeChecked(ctx, toks, func() (*result, error) { return ss.runMerge(ctx, toks, binds) })
	case "BEGIN", "START":
		return ss.begin(ctx)
	case "COMMIT":
		return ss.commit(ctx)
	case "ROLLBACK", "ABORT":
		return ss.rollback(ctx)
	case "CREATE":
		return ss.runCreate(ctx, toks)
	case "DROP":
		return ss.runDrop(ctx, toks)
	case "ALTER":
		return ss.runAlter(ctx, toks)
	case "TRUNCATE":
		return ss.runTruncate(ctx, toks)
	case "USE":
		return ss.runUse(ctx, toks)
	case "PUT":
		return ss.runPut(ctx, sqlText)
	case "COPY":
		return ss.runCopy(ctx, sqlText, toks)
	case "REMOVE", "RM":
		return ss.runRemove(ctx, sqlText, toks)
	case "LIST", "LS":
		return ss.runList(ctx, sqlText, toks)
	case "COMMENT":
		return ss.runComment(ctx, toks)
	case "SHOW":
		if len(toks) > 1 && toks[1].isWord("PARAMETERS") {
			return ss.showParameters(toks)
		}
		return nil, unsupported("SHOW %s", toks[1].text)
	case "GRANT", "REVOKE":
		// Privileges have no effect on what a driver can observe here.
		return statusResult(stmtDDL, "Statement executed successfully."), nil
	}
	return nil, unsupported("statements starting with %s", toks[0].text)
}

// prepare applies the rewrites every DuckDB-bound statement needs: qualified
// references to session temp tables, cast types and function names.
func (ss *session) prepare(toks []token) (string, error) {
	toks = ss.rewriteTempRefs(toks)
	toks = ss.rewriteColumnsView(toks)
	toks, err := rewriteExpressions(toks)
	if err != nil {
		return "", err
	}
	return render(toks), nil
}

// rewriteColumnsView replaces [db.]INFORMATION_SCHEMA.COLUMNS with
// columnsViewSQL of that database (the session's when unqualified).
func (ss *session) rewriteColumnsView(toks []token) []token {
	out := make([]token, 0, len(toks))
	for i := 0; i < len(toks); {
		if toks[i].isIdent() && (i == 0 || !toks[i-1].isPunct(".")) {
			parts, next, _ := readQualifiedName(toks, i)
			n := len(parts)
			if n >= 2 && parts[n-2] == "INFORMATION_SCHEMA" && parts[n-1] == "COLUMNS" {
				db := ss.database
				if n == 3 {
					db = parts[0]
				}
				lexed, err := lex(ss.srv.columnsViewSQL(db))
				if err == nil {
					lexed[0].sp = toks[i].sp
					out = append(out, lexed...)
					i = next
					continue
				}
			}
		}
		out = append(out, toks[i])
		i++
	}
	return out
}

// rewriteTempRefs points DB.SCHEMA.T and SCHEMA.T at temp.main.T when T is one of
// the session's temporary tables (unqualified names already resolve there first).
func (ss *session) rewriteTempRefs(toks []token) []token {
	if len(ss.temps) == 0 {
		return toks
	}
	out := make([]token, 0, len(toks))
	for i := 0; i < len(toks); {
		if toks[i].isIdent() && (i == 0 || !toks[i-1].isPunct(".")) {
			parts, next, _ := readQualifiedName(toks, i)
			var key string
			switch len(parts) {
			case 3:
				key = tempKey(parts[0], parts[1], parts[2])
			case 2:
				key = tempKey(ss.database, parts[0], parts[1])
			}
			if t, ok := ss.temps[key]; ok && key != "" {
				sp := toks[i].sp
				out = append(out, token{kind: tkWord, text: "temp", val: "TEMP", sp: sp}, punct(".", false),
					token{kind: tkWord, text: "main", val: "MAIN"}, punct(".", false),
					token{kind: tkQuoted, val: t.name})
				i = next
				continue
			}
		}
		out = append(out, toks[i])
		i++
	}
	return out
}

func (ss *session) runQuery(ctx context.Context, toks []token, binds [][]any) (*result, error) {
	if len(binds) > 1 {
		return nil, unsupported("array binding in a query")
	}
	q, err := ss.prepare(toks)
	if err != nil {
		return nil, err
	}
	res, err := ss.query(ctx, q, binds[0], true)
	if db, schema, table, ok := ss.singleTableStar(toks); ok && err == nil {
		// The declared lengths DuckDB does not keep (lengths.go).
		lengths := ss.srv.lengthsOf(db, schema, table)
		for i, c := range res.columns {
			if n, ok := lengths[c.Name]; ok && (c.Type == "text" || c.Type == "binary") {
				res.columns[i].Length = n
			}
		}
	}
	return res, err
}

func (ss *session) runDML(ctx context.Context, toks []token, binds [][]any, stmtType int64, names []string) (*result, error) {
	q, err := ss.prepare(toks)
	if err != nil {
		return nil, err
	}
	var n int64
	for _, args := range binds {
		res, err := ss.exec(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		c, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("rows affected: %w", err)
		}
		n += c
	}
	counts := make([]int64, len(names))
	counts[0] = n
	return countResult(stmtType, names, counts), nil
}

// runMerge counts rows per action with DuckDB's RETURNING merge_action, because
// Snowflake reports inserted/updated/deleted separately (one column per kind of
// WHEN clause present) and the driver sums them for RowsAffected.
func (ss *session) runMerge(ctx context.Context, toks []token, binds [][]any) (*result, error) {
	q, err := ss.prepare(toks)
	if err != nil {
		return nil, err
	}
	var has [3]bool // insert, update, delete
	for i := 1; i < len(toks); i++ {
		if toks[i-1].isWord("THEN") {
			switch toks[i].val {
			case "INSERT":
				has[0] = true
			case "UPDATE":
				has[1] = true
			case "DELETE":
				has[2] = true
			}
		}
	}
	var counts [3]int64
	for _, args := range binds {
		if (has[1] || has[2]) && ss.paramTrue("ERROR_ON_NONDETERMINISTIC_MERGE") {
			if err := ss.checkDeterministicMerge(ctx, toks); err != nil {
				return nil, err
			}
		}
		rows, err := ss.conn.QueryContext(ctx, q+" RETURNING merge_action", args...)
		if err != nil {
			return nil, ss.duckErr(err)
		}
		for rows.Next() {
			var action string
			if err := rows.Scan(&action); err != nil {
				_ = rows.Close()
				return nil, fmt.Errorf("scan merge action: %w", err)
			}
			switch action {
			case "INSERT":
				counts[0]++
			case "UPDATE":
				counts[1]++
			case "DELETE":
				counts[2]++
			}
		}
		err = rows.Err()
		_ = rows.Close()
		if err != nil {
			return nil, ss.duckErr(err)
		}
	}
	var names []string
	var vals []int64
	for i, label := range []string{"number of rows inserted", "number of rows updated", "number of rows deleted"} {
		if has[i] {
			names = append(names, label)
			vals = append(vals, counts[i])
		}
	}
	return countResult(stmtMerge, names, vals), nil
}

// errNondeterministicMerge is Snowflake's answer (ERROR_ON_NONDETERMINISTIC_MERGE,
// on by default) when one target row matches several source rows of a MERGE with
// UPDATE or DELETE. DuckDB would silently apply one of them, hiding a missing
// de-duplication in the driver.
var errNondeterministicMerge = &sfError{code: "100090", sqlState: "42P18", msg: "Duplicate row detected during DML action"}

// checkDeterministicMerge looks for a target row joined by more than one source row.
func (ss *session) checkDeterministicMerge(ctx context.Context, toks []token) error {
	// MERGE INTO <target> USING <source> ON <condition> WHEN ...
	using, on, when := -1, -1, -1
	depth := 0
	for i, t := range toks {
		switch {
		case t.isPunct("("):
			depth++
		case t.isPunct(")"):
			depth--
		case depth == 0 && t.isWord("USING") && using < 0:
			using = i
		case depth == 0 && t.isWord("ON") && using >= 0 && on < 0:
			on = i
		case depth == 0 && t.isWord("WHEN") && on >= 0 && when < 0:
			when = i
		}
	}
	if using < 0 || on < 0 || when < 0 || using < 3 {
		return &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nMERGE needs INTO <target> USING <source> ON <condition> WHEN ..."}
	}
	target := toks[2:using]
	// The target's correlation name: its alias, or else the table name.
	alias := target[len(target)-1]
	if !alias.isIdent() {
		return &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\ncannot read the MERGE target"}
	}
	probe := append([]token{word("SELECT"), token{kind: tkNumber, text: "1", sp: true}, word("FROM")}, target...)
	probe = append(probe, word("JOIN"))
	probe = append(probe, toks[using+1:when]...)
	probe = append(probe, word("GROUP"), word("BY"), alias, punct(".", false), token{kind: tkWord, val: "ROWID"},
		word("HAVING"), word("COUNT(*)"), punct(">", true), token{kind: tkNumber, text: "1", sp: true}, word("LIMIT"), token{kind: tkNumber, text: "1", sp: true})
	q, err := ss.prepare(probe)
	if err != nil {
		return err
	}
	// Only the bind markers used in USING/ON appear in the probe; renumbering them
	// would be fragile, so the check is skipped for MERGEs with binds there.
	for _, t := range toks[using:when] {
		if t.kind == tkParam {
			return nil
		}
	}
	rows, err := ss.conn.QueryContext(ctx, q)
	if err != nil {
		return ss.duckErr(err)
	}
	defer rows.Close()
	if rows.Next() {
		// Only this statement fails; DuckDB's transaction is untouched, as in Snowflake.
		return errNondeterministicMerge
	}
	return ss.duckErr(rows.Err())
}

func (ss *session) runTruncate(ctx context.Context, toks []token) (*result, error) {
	q, err := ss.prepare(toks)
	if err != nil {
		return nil, err
	}
	if _, err := ss.exec(ctx, q); err != nil {
		return nil, err
	}
	return statusResult(stmtDDL, "Statement executed successfully."), nil
}

func (ss *session) runUse(ctx context.Context, toks []token) (*result, error) {
	i := 1
	kind := ""
	if i < len(toks) && toks[i].kind == tkWord {
		switch toks[i].val {
		case "DATABASE", "SCHEMA", "WAREHOUSE", "ROLE", "SECONDARY":
			kind = toks[i].val
			i++
		}
	}
	if kind == "SECONDARY" {
		return statusResult(stmtUse, "Statement executed successfully."), nil
	}
	parts, _, ok := readQualifiedName(toks, i)
	if !ok {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nUSE needs an object name"}
	}
	switch {
	case kind == "WAREHOUSE":
		ss.warehouse = parts[0]
	case kind == "ROLE":
		ss.role = parts[0]
	case kind == "DATABASE" || kind == "" && len(parts) == 1 && ss.isDatabase(ctx, parts[0]):
		if err := ss.use(ctx, parts[0], "PUBLIC", true); err != nil {
			return nil, err
		}
	case len(parts) == 2:
		if err := ss.use(ctx, parts[0], parts[1], true); err != nil {
			return nil, err
		}
	default:
		if err := ss.use(ctx, ss.database, parts[len(parts)-1], true); err != nil {
			return nil, err
		}
	}
	return statusResult(stmtUse, "Statement executed successfully."), nil
}

func (ss *session) isDatabase(ctx context.Context, name string) bool {
	var n int
	err := ss.conn.QueryRowContext(ctx, "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", encodeName(name)).Scan(&n)
	return err == nil && n > 0
}

// --- DDL ---------------------------------------------------------------------------

func (ss *session) runCreate(ctx context.Context, toks []token) (*result, error) {
	i := 1
	orReplace := false
	if i+1 < len(toks) && toks[i].isWord("OR") && toks[i+1].isWord("REPLACE") {
		orReplace = true
		i += 2
	}
	temporary, transient := false, false
	for i < len(toks) && toks[i].kind == tkWord {
		switch toks[i].val {
		case "LOCAL", "GLOBAL":
		case "TEMP", "TEMPORARY", "VOLATILE":
			temporary = true
		case "TRANSIENT":
			transient = true
		default:
			goto kind
		}
		i++
	}
kind:
	if i >= len(toks) {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nincomplete CREATE statement"}
	}
	_ = transient // transient tables behave like permanent ones for a driver
	switch toks[i].val {
	case "TABLE":
		return ss.createTable(ctx, toks, i+1, orReplace, temporary)
	case "SCHEMA":
		if err := ss.implicitCommit(ctx); err != nil {
			return nil, err
		}
		rest := toks[i+1:]
		ine := len(rest) > 3 && rest[0].isWord("IF") && rest[1].isWord("NOT") && rest[2].isWord("EXISTS")
		q, err := ss.prepare(rest)
		if err != nil {
			return nil, err
		}
		if orReplace {
			return nil, unsupported("CREATE OR REPLACE SCHEMA")
		}
		if _, err := ss.exec(ctx, "CREATE SCHEMA "+q); err != nil {
			return nil, err
		}
		msg := "Schema successfully created."
		if ine {
			msg = "Statement executed successfully."
		}
		return statusResult(stmtDDL, msg), nil
	case "DATABASE":
		if err := ss.implicitCommit(ctx); err != nil {
			return nil, err
		}
		j := i + 1
		ine := false
		if j+2 < len(toks) && toks[j].isWord("IF") && toks[j+1].isWord("NOT") && toks[j+2].isWord("EXISTS") {
			ine, j = true, j+3
		}
		if j >= len(toks) || !toks[j].isIdent() {
			return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nCREATE DATABASE needs a name"}
		}
		if err := ss.srv.createDatabase(ctx, toks[j].val, ine); err != nil {
			return nil, err
		}
		// Snowflake switches the session to a database it just created.
		if err := ss.use(ctx, toks[j].val, "PUBLIC", true); err != nil {
			return nil, err
		}
		return statusResult(stmtDDL, fmt.Sprintf("Database %s successfully created.", toks[j].val)), nil
	case "STAGE":
		return ss.createStage(ctx, toks, i+1, orReplace, temporary)
	case "VIEW":
		if err := ss.implicitCommit(ctx); err != nil {
			return nil, err
		}
		q, err := ss.prepare(toks[i:])
		if err != nil {
			return nil, err
		}
		prefix := "CREATE "
		if orReplace {
			prefix += "OR REPLACE "
		}
		if temporary {
			prefix += "TEMP "
		}
		if _, err := ss.exec(ctx, prefix+q); err != nil {
			return nil, err
		}
		return statusResult(stmtDDL, "View successfully created."), nil
	}
	return nil, unsupported("CREATE %s", toks[i].text)
}

// createTable rewrites CREATE TABLE for DuckDB: Snowflake types, no TRANSIENT, no
// unenforced constraints or table options, temp tables in DuckDB's temp catalog.
func (ss *session) createTable(ctx context.Context, toks []token, i int, orReplace, temporary bool) (*result, error) {
	if err := ss.implicitCommit(ctx); err != nil {
		return nil, err
	}
	ifNotExists := false
	if i+2 < len(toks) && toks[i].isWord("IF") && toks[i+1].isWord("NOT") && toks[i+2].isWord("EXISTS") {
		ifNotExists, i = true, i+3
	}
	parts, i, ok := readQualifiedName(toks, i)
	if !ok {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nCREATE TABLE needs a table name"}
	}
	db, schema, name := ss.qualify(parts)
	existed := ifNotExists && !temporary && ss.tableExists(ctx, db, schema, name)
	var defToks []token
	var b strings.Builder
	b.WriteString("CREATE ")
	if orReplace {
		b.WriteString("OR REPLACE ")
	}
	if temporary {
		b.WriteString("TEMP ")
	}
	b.WriteString("TABLE ")
	if ifNotExists {
		b.WriteString("IF NOT EXISTS ")
	}
	target := quoteIdent(db) + "." + quoteIdent(schema) + "." + quoteIdent(name)
	if temporary {
		target = "temp.main." + quoteIdent(name)
		b.WriteString(quoteIdent(name))
	} else {
		b.WriteString(target)
	}
	insert := ""
	if i < len(toks) && toks[i].isPunct("(") {
		end := matchingParen(toks, i)
		if end < 0 {
			return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nunbalanced parentheses in CREATE TABLE"}
		}
		defToks = toks[i+1 : end]
		defs, err := rewriteColumnDefs(defToks)
		if err != nil {
			return nil, err
		}
		b.WriteString(" (" + render(defs) + ")")
		i = end + 1
	}
	// Table options Snowflake accepts and a driver may send; none changes what the
	// driver can observe, so they are dropped.
	for i < len(toks) && !toks[i].isWord("AS") && !toks[i].isWord("LIKE") && !toks[i].isWord("CLONE") {
		switch {
		case toks[i].isWord("CLUSTER") && i+2 < len(toks) && toks[i+1].isWord("BY") && toks[i+2].isPunct("("):
			i = matchingParen(toks, i+2) + 1
		case toks[i].isWord("COPY") && i+1 < len(toks) && toks[i+1].isWord("GRANTS"):
			i += 2
		case toks[i].kind == tkWord && i+2 < len(toks) && toks[i+1].isPunct("="):
			i += 2
			if toks[i].isPunct("(") {
				i = matchingParen(toks, i)
			}
			i++
		case toks[i].isWord("WITH"):
			return nil, unsupported("CREATE TABLE ... WITH (tags, policies)")
		default:
			return nil, unsupported("CREATE TABLE clause %q", toks[i].text)
		}
	}
	if i < len(toks) {
		switch toks[i].val {
		case "CLONE":
			return nil, unsupported("CREATE TABLE ... CLONE")
		case "LIKE":
			src, _, ok := readQualifiedName(toks, i+1)
			if !ok {
				return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nLIKE needs a table name"}
			}
			srcToks := nameTokens(src)
			q, err := ss.prepare(srcToks)
			if err != nil {
				return nil, err
			}
			// DuckDB has no CREATE TABLE LIKE; an empty CTAS copies names and types.
			b.WriteString(" AS SELECT * FROM " + q + " LIMIT 0")
		default: // AS <query>
			q, err := ss.prepare(toks[i:])
			if err != nil {
				return nil, err
			}
			if defToks != nil {
				// DuckDB has no column definitions in CTAS: create the
				// table, then insert the query's rows by position.
				insert = "INSERT INTO " + target + " " + strings.TrimPrefix(strings.TrimSpace(q), "AS ")
			} else {
				b.WriteString(" " + q)
			}
		}
	}
	// CREATE TABLE … (c VARCHAR(n)) AS SELECT: the selected values must fit
	// the declared lengths, else the statement fails and (OR REPLACE) the
	// old table stays.
	lengths := map[string]int64{}
	if !temporary && !existed && i < len(toks) && toks[i].isWord("AS") {
		lengths = defLengths(defToks)
	}
	finish := func(bool) error { return nil }
	if len(lengths) > 0 || insert != "" {
		var err error
		if finish, err = ss.beginImplicit(ctx); err != nil {
			return nil, err
		}
	}
	_, err := ss.exec(ctx, b.String())
	if err == nil && insert != "" {
		_, err = ss.exec(ctx, insert)
	}
	if err == nil && len(lengths) > 0 {
		err = ss.checkLengths(ctx, db, schema, name, lengths)
	}
	if err != nil {
		if ferr := finish(false); ferr != nil {
			ss.srv.log.Warn("fakesnowflake: roll back a refused CREATE TABLE AS", "err", ferr)
		}
		return nil, err
	}
	if err := finish(true); err != nil {
		return nil, err
	}
	key := tempKey(db, schema, name)
	if orReplace || !ifNotExists {
		ss.srv.forgetTable(ss, db, schema, name, temporary)
	}
	if temporary {
		ss.temps[key] = tempTable{db: db, schema: schema, name: name}
	} else {
		delete(ss.temps, key)
		if !existed {
			ss.recordDefLengths(db, schema, name, defToks)
		}
	}
	msg := fmt.Sprintf("Table %s successfully created.", name)
	if ifNotExists {
		msg = fmt.Sprintf("%s already exists, statement succeeded.", name)
	}
	return statusResult(stmtDDL, msg), nil
}

// nameTokens turns normalized name parts back into tokens.
func nameTokens(parts []string) []token {
	var out []token
	for i, p := range parts {
		if i > 0 {
			out = append(out, punct(".", false))
		}
		out = append(out, token{kind: tkQuoted, val: p})
	}
	return out
}

// qualify fills in the session's database and schema for a 1- or 2-part name.
func (ss *session) qualify(parts []string) (db, schema, name string) {
	switch len(parts) {
	case 3:
		return parts[0], parts[1], parts[2]
	case 2:
		return ss.database, parts[0], parts[1]
	default:
		return ss.database, ss.schema, parts[0]
	}
}

// lookupTemp finds a session temp table by a 1-3 part name.
func (ss *session) lookupTemp(parts []string) (tempTable, bool) {
	if len(parts) == 1 {
		for _, t := range ss.temps {
			if t.name == parts[0] {
				return t, true
			}
		}
		return tempTable{}, false
	}
	db, schema, name := ss.qualify(parts)
	t, ok := ss.temps[tempKey(db, schema, name)]
	return t, ok
}

func (ss *session) runDrop(ctx context.Context, toks []token) (*result, error) {
	if err := ss.implicitCommit(ctx); err != nil {
		return nil, err
	}
	if len(toks) < 3 {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nincomplete DROP statement"}
	}
	kind := toks[1].val
	i := 2
	ifExists := false
	if i+1 < len(toks) && toks[i].isWord("IF") && toks[i+1].isWord("EXISTS") {
		ifExists, i = true, i+2
	}
	parts, next, ok := readQualifiedName(toks, i)
	if !ok {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nDROP needs an object name"}
	}
	ie := ""
	if ifExists {
		ie = "IF EXISTS "
	}
	switch kind {
	case "TABLE", "VIEW":
		var target string
		t, isTemp := ss.lookupTemp(parts)
		if kind == "TABLE" && isTemp {
			target = "temp.main." + quoteIdent(t.name)
		} else {
			q, err := ss.prepare(nameTokens(parts))
			if err != nil {
				return nil, err
			}
			target = q
		}
		if _, err := ss.exec(ctx, "DROP "+kind+" "+ie+target); err != nil {
			return nil, err
		}
		if kind == "TABLE" {
			if isTemp {
				delete(ss.temps, tempKey(t.db, t.schema, t.name))
				ss.srv.forgetTable(ss, t.db, t.schema, t.name, true)
			} else {
				db, schema, name := ss.qualify(parts)
				ss.srv.forgetTable(ss, db, schema, name, false)
			}
		}
		return statusResult(stmtDDL, fmt.Sprintf("%s successfully dropped.", parts[len(parts)-1])), nil
	case "SCHEMA":
		q, err := ss.prepare(nameTokens(parts))
		if err != nil {
			return nil, err
		}
		// Snowflake drops a schema with its contents unless RESTRICT is given.
		mode := " CASCADE"
		if next < len(toks) && toks[next].isWord("RESTRICT") {
			mode = ""
		}
		if _, err := ss.exec(ctx, "DROP SCHEMA "+ie+q+mode); err != nil {
			return nil, err
		}
		return statusResult(stmtDDL, fmt.Sprintf("%s successfully dropped.", parts[len(parts)-1])), nil
	case "DATABASE":
		if _, err := ss.exec(ctx, "DETACH DATABASE "+ie+quoteIdent(parts[0])); err != nil {
			return nil, err
		}
		if ss.srv.cfg.DataDir != "" {
			_ = os.Remove(ss.srv.cfg.DataDir + "/" + parts[0] + ".duckdb")
		}
		return statusResult(stmtDDL, fmt.Sprintf("%s successfully dropped.", parts[0])), nil
	case "STAGE":
		return ss.dropStage(parts, ifExists)
	}
	return nil, unsupported("DROP %s", toks[1].text)
}

// runAlter handles ALTER SESSION/WAREHOUSE (accepted, no effect) and ALTER TABLE.
// Snowflake's ADD COLUMN takes several columns; DuckDB's one, so it is split.
func (ss *session) runAlter(ctx context.Context, toks []token) (*result, error) {
	if len(toks) < 2 {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nincomplete ALTER statement"}
	}
	switch toks[1].val {
	case "SESSION":
		return ss.runAlterSession(toks)
	case "WAREHOUSE", "USER", "ACCOUNT":
		return statusResult(stmtAltSess, "Statement executed successfully."), nil
	case "TABLE":
	default:
		return nil, unsupported("ALTER %s", toks[1].text)
	}
	if err := ss.implicitCommit(ctx); err != nil {
		return nil, err
	}
	i := 2
	ifExists := ""
	if i+1 < len(toks) && toks[i].isWord("IF") && toks[i+1].isWord("EXISTS") {
		ifExists, i = "IF EXISTS ", i+2
	}
	parts, i, ok := readQualifiedName(toks, i)
	if !ok {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nALTER TABLE needs a table name"}
	}
	nameSQL, err := ss.prepare(nameTokens(parts))
	if err != nil {
		return nil, err
	}
	prefix := "ALTER TABLE " + ifExists + nameSQL + " "
	db, schema, table := ss.qualify(parts)
	_, temp := ss.lookupTemp(parts)
	var stmts []string
	var after []func() // bookkeeping once the statements ran (lengths.go)
	switch {
	case i < len(toks) && toks[i].isWord("ADD"):
		i++
		if i < len(toks) && toks[i].isWord("COLUMN") {
			i++
		}
		for _, elem := range splitTopLevel(toks[i:]) {
			if len(elem) > 0 && elem[0].isWord("COLUMN") {
				elem = elem[1:]
			}
			ine := ""
			if len(elem) > 3 && elem[0].isWord("IF") && elem[1].isWord("NOT") && elem[2].isWord("EXISTS") {
				ine, elem = "IF NOT EXISTS ", elem[3:]
			}
			if len(elem) == 0 {
				return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nADD COLUMN needs a column"}
			}
			if elem[0].isWord("CONSTRAINT") || elem[0].isWord("PRIMARY") || elem[0].isWord("UNIQUE") || elem[0].isWord("FOREIGN") {
				continue // not enforced by Snowflake
			}
			def, err := rewriteColumnDef(elem, false)
			if err != nil {
				return nil, err
			}
			stmts = append(stmts, prefix+"ADD COLUMN "+ine+render(def))
			if !temp {
				after = append(after, func() {
					ss.recordDefLengths(db, schema, table, elem)
					ss.srv.markAddedDefault(db, schema, table, elem)
				})
			}
		}
	case i+1 < len(toks) && (toks[i].isWord("ALTER") || toks[i].isWord("MODIFY")):
		// ALTER [COLUMN] c [SET DATA] TYPE t | COMMENT 'x' | UNSET COMMENT |
		// SET NOT NULL | DROP NOT NULL, several comma-separated, optionally in
		// parentheses: DuckDB takes one per statement.
		items := toks[i+1:]
		if len(items) > 1 && items[0].isPunct("(") && matchingParen(items, 0) == len(items)-1 {
			items = items[1 : len(items)-1]
		}
		for _, rest := range splitTopLevel(items) {
			q, err := ss.alterColumn(prefix, db, schema, table, rest)
			if err != nil {
				return nil, err
			}
			stmts = append(stmts, q)
			if j := setDataTypeAt(rest); j > 0 && !temp {
				col := rest[0]
				if col.isWord("COLUMN") {
					col = rest[1]
				}
				n, _ := declaredLength(rest, j)
				after = append(after, func() { ss.srv.setLength(db, schema, table, col.val, n) })
			}
		}
	default:
		q, err := ss.prepare(toks[i:])
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, prefix+q)
		if !temp {
			rest := toks[i:]
			after = append(after, func() { ss.recordAlterLengths(db, schema, table, rest) })
		}
	}
	for _, q := range stmts {
		if _, err := ss.exec(ctx, q); err != nil {
			return nil, err
		}
	}
	for _, f := range after {
		f()
	}
	return statusResult(stmtDDL, "Statement executed successfully."), nil
}

// alterColumn renders one item of ALTER TABLE … ALTER COLUMN for DuckDB.
// A column comment becomes DuckDB's COMMENT ON COLUMN, which duckdb_columns()
// and INFORMATION_SCHEMA.COLUMNS (see columnsViewSQL) show.
func (ss *session) alterColumn(prefix, db, schema, table string, rest []token) (string, error) {
	if len(rest) > 0 && rest[0].isWord("COLUMN") {
		rest = rest[1:]
	}
	if len(rest) < 2 || !rest[0].isIdent() {
		return "", &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nincomplete ALTER COLUMN"}
	}
	col := render(rest[:1])
	j := 1
	switch {
	case rest[j].isWord("COMMENT") && j+1 < len(rest) && rest[j+1].kind == tkString:
		return ss.commentOnColumn(db, schema, table, rest[0].val, quoteString(rest[j+1].val)), nil
	case rest[j].isWord("UNSET") && j+1 < len(rest) && rest[j+1].isWord("COMMENT"):
		return ss.commentOnColumn(db, schema, table, rest[0].val, "NULL"), nil
	case rest[j].isWord("DROP") && j+1 < len(rest) && rest[j+1].isWord("DEFAULT") && ss.srv.addedDefault(db, schema, table, rest[0].val):
		return "", &sfError{code: "002262", sqlState: "0A000", msg: fmt.Sprintf(
			"SQL compilation error:\nUnsupported feature 'Alter Column Drop Default': column %s's default was defined by ALTER TABLE … ADD COLUMN", rest[0].val)}
	case rest[j].isWord("SET") && j+2 < len(rest) && rest[j+1].isWord("DATA") && rest[j+2].isWord("TYPE"):
		j += 3
	case rest[j].isWord("TYPE"):
		j++
	default:
		q, err := ss.prepare(rest[1:])
		if err != nil {
			return "", err
		}
		return prefix + "ALTER COLUMN " + col + " " + q, nil
	}
	typ, _, err := rewriteType(rest, j)
	if err != nil {
		return "", err
	}
	n, _ := declaredLength(rest, j)
	if err := ss.checkTypeChange(context.Background(), db, schema, table, rest[0].val, typ, n); err != nil {
		return "", err
	}
	return prefix + "ALTER COLUMN " + col + " SET DATA TYPE " + render(typ), nil
}

// setDataTypeAt returns the index of the type in one ALTER COLUMN item
// that sets it ([COLUMN] c [SET DATA] TYPE t), 0 for other items.
func setDataTypeAt(rest []token) int {
	j := 1
	if len(rest) > 0 && rest[0].isWord("COLUMN") {
		j = 2
	}
	switch {
	case j+2 < len(rest) && rest[j].isWord("SET") && rest[j+1].isWord("DATA") && rest[j+2].isWord("TYPE"):
		return j + 3
	case j < len(rest) && rest[j].isWord("TYPE"):
		return j + 1
	}
	return 0
}

// commentOnColumn is DuckDB's COMMENT ON COLUMN for a table of the session
// (temporary or not); comment is a rendered literal or NULL.
func (ss *session) commentOnColumn(db, schema, table, column, comment string) string {
	name := quoteIdent(db) + "." + quoteIdent(schema) + "." + quoteIdent(table)
	if _, ok := ss.temps[tempKey(db, schema, table)]; ok {
		name = "temp.main." + quoteIdent(table)
	}
	return "COMMENT ON COLUMN " + name + "." + quoteIdent(column) + " IS " + comment
}

// runComment handles COMMENT [IF EXISTS] ON COLUMN t.c IS '…' (DuckDB's
// COMMENT ON COLUMN). Comments on other objects are accepted and have no
// effect: nothing a driver observes here depends on them.
func (ss *session) runComment(ctx context.Context, toks []token) (*result, error) {
	i := 1
	ifExists := i+1 < len(toks) && toks[i].isWord("IF") && toks[i+1].isWord("EXISTS")
	if ifExists {
		i += 2
	}
	if !(i+1 < len(toks) && toks[i].isWord("ON") && toks[i+1].isWord("COLUMN")) {
		return statusResult(stmtDDL, "Statement executed successfully."), nil
	}
	if err := ss.implicitCommit(ctx); err != nil {
		return nil, err
	}
	// COLUMN [db.][schema.]table.column: readQualifiedName reads three parts
	// at most, so the dotted name is read here.
	var parts []string
	for j := i + 2; j < len(toks); j += 2 {
		if !toks[j].isIdent() {
			break
		}
		parts = append(parts, toks[j].val)
		i = j + 1
		if j+1 >= len(toks) || !toks[j+1].isPunct(".") {
			break
		}
	}
	if len(parts) < 2 || len(parts) > 4 || i+1 >= len(toks) || !toks[i].isWord("IS") ||
		(toks[i+1].kind != tkString && !toks[i+1].isWord("NULL")) {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nCOMMENT ON COLUMN needs table.column IS '<comment>'"}
	}
	comment := "NULL"
	if toks[i+1].kind == tkString {
		comment = quoteString(toks[i+1].val)
	}
	db, schema, table := ss.qualify(parts[:len(parts)-1])
	if _, err := ss.exec(ctx, ss.commentOnColumn(db, schema, table, parts[len(parts)-1], comment)); err != nil {
		if ifExists {
			return statusResult(stmtDDL, "Statement executed successfully."), nil
		}
		return nil, err
	}
	return statusResult(stmtDDL, "Statement executed successfully."), nil
}

// errorsAs is errors.As with a type parameter.
func errorsAs[T error](err error) (T, bool) {
	var t T
	ok := errors.As(err, &t)
	return t, ok
}
