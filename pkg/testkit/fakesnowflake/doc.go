// Package fakesnowflake is a fake Snowflake endpoint for tests: the real
// gosnowflake driver logs in to it with key-pair (SNOWFLAKE_JWT) authentication and
// runs statements that execute on embedded DuckDB. It lets Rosetta's Snowflake
// destination be tested on a machine that cannot reach Snowflake.
//
// # Protocol
//
// The server answers POST /session/v1/login-request (RS256 JWT verified against
// the user's registered public keys: signature, iss fingerprint, sub, exp),
// /session/token-request (renewal with the master token; session tokens expire
// after Config.SessionTTL and the client renews them on code 390112),
// /session?delete=true, /session/heartbeat, /queries/v1/query-request,
// /queries/v1/abort-request (cancels the running DuckDB statement) and
// /telemetry/send (no-op). Queries need the session token. Results are always
// queryResultFormat "json"; cells are encoded as Snowflake does (fixed and real as
// decimal text, boolean "1"/"0", date as days since the epoch, time and
// timestamp_ntz as "seconds.nanoseconds", timestamp_tz with " <offset+1440>",
// binary as hex, variant as indented JSON with sorted keys).
//
// With Config.TLS the server speaks HTTPS with a certificate for 127.0.0.1
// signed by a CA made at Start (Server.CAPEM, CAFile); clients use Protocol
// "https" and trust that CA (Server.ClientTransport, or a Rosetta
// destination's tls_ca_file), never skip verification. Without it, plain
// HTTP. Configure the client with DisableTelemetry true and the environment
// SNOWFLAKE_DISABLE_PLATFORM_DETECTION=true and SF_DISABLE_MINICORE=true.
//
// # Sessions, databases, stages
//
// Each session has its own DuckDB connection, so temporary tables and
// transactions are per session. Each Snowflake database is a DuckDB database
// ATTACHed under its name (in memory, or <DataDir>/<NAME>.duckdb) with a PUBLIC
// schema. Internal stages (@%table, @~, named stages from CREATE STAGE) are
// directories under Config.StageDir; PUT answers with a LOCAL_FS upload command,
// so the driver's own upload code (including its compression) is exercised.
//
// # Supported SQL
//
//   - SELECT / WITH / VALUES, INSERT, UPDATE, DELETE, MERGE (counts per action via
//     RETURNING merge_action), TRUNCATE.
//   - BEGIN / START TRANSACTION, COMMIT, ROLLBACK. BEGIN inside a transaction and
//     COMMIT/ROLLBACK outside one are no-ops, as in Snowflake. DDL first commits an
//     open transaction, as in Snowflake.
//   - CREATE [OR REPLACE] [TEMPORARY|TRANSIENT] TABLE [IF NOT EXISTS] with columns,
//     AS SELECT or LIKE; CREATE/DROP SCHEMA, DATABASE, STAGE, VIEW; DROP TABLE;
//     ALTER TABLE ADD [COLUMN] (several columns), ALTER COLUMN (several,
//     comma-separated) ... [SET DATA] TYPE (refused as Snowflake refuses it:
//     another type family, a NUMBER's new scale or a shorter VARCHAR fail
//     with 040052 and Snowflake's message), COMMENT '…', UNSET COMMENT, DROP DEFAULT
//     (refused, as in Snowflake, for a default ADD COLUMN defined), DROP
//     COLUMN, RENAME [COLUMN]; COMMENT [IF EXISTS] ON COLUMN t.c IS '…' (other
//     COMMENTs are no-ops); USE DATABASE/SCHEMA/WAREHOUSE/ROLE; ALTER SESSION
//     SET/UNSET and SHOW PARAMETERS (see Session parameters); GRANT/REVOKE (no-op).
//   - [db.]INFORMATION_SCHEMA.COLUMNS, read from DuckDB's duckdb_columns():
//     TABLE_CATALOG, TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION,
//     DATA_TYPE in Snowflake's names (NUMBER, TEXT, FLOAT, BOOLEAN, DATE,
//     TIME, TIMESTAMP_NTZ, TIMESTAMP_TZ, BINARY, VARIANT),
//     CHARACTER_MAXIMUM_LENGTH and CHARACTER_OCTET_LENGTH (declared VARCHAR
//     and BINARY lengths, else 16777216 and 8388608), NUMERIC_PRECISION,
//     NUMERIC_PRECISION_RADIX and NUMERIC_SCALE (NUMBER only),
//     DATETIME_PRECISION (always 9), IS_NULLABLE and COMMENT (column
//     comments survive RENAME COLUMN).
//   - PUT file://... @stage[/path] [AUTO_COMPRESS, OVERWRITE, PARALLEL,
//     SOURCE_COMPRESSION]; LIST and REMOVE @stage [PATTERN].
//   - COPY INTO table FROM @stage[/path], or the transformation form
//     COPY INTO table (cols) FROM (SELECT $1, $3, … FROM @stage[/path]) (file
//     columns by position only; a column list without a transformation is
//     refused with 001003, as Snowflake documents it only with one) [FILES, PATTERN]
//     FILE_FORMAT=(TYPE=CSV|PARQUET, FIELD_DELIMITER, SKIP_HEADER,
//     FIELD_OPTIONALLY_ENCLOSED_BY, ESCAPE, NULL_IF, EMPTY_FIELD_AS_NULL,
//     COMPRESSION, PARSE_HEADER) [MATCH_BY_COLUMN_NAME] [PURGE] [FORCE]
//     [ON_ERROR=ABORT_STATEMENT]. Each file becomes an INSERT from read_csv or
//     read_parquet, all in one transaction; the result has Snowflake's per-file
//     rows. Files already loaded into the table with identical content are
//     skipped unless FORCE=TRUE, like Snowflake's load metadata.
//
// Anything else (multi-statement requests, async queries, stage array binding,
// GET, external stages, COPY transformations beyond $N, ON_ERROR other than
// ABORT_STATEMENT, TRUNCATECOLUMNS=TRUE, SIZE_LIMIT, TRIM_SPACE=TRUE,
// AUTOINCREMENT, ...) fails with code 002040 and a message naming the
// construct, rather than doing something subtly different. A word that is no
// documented COPY or file format option is a syntax error (001003), as in
// Snowflake.
//
// # Session parameters
//
// Each session starts from Snowflake's defaults, overlaid with the user's
// parameters (User.Parameters: what ALTER USER … SET gives), then the
// login request's SESSION_PARAMETERS (gosnowflake's Config.Params; an
// unknown name fails the login), then ALTER SESSION SET/UNSET. The fake
// acts on QUOTED_IDENTIFIERS_IGNORE_CASE, the DATE/TIME/TIMESTAMP input
// formats (in COPY), ERROR_ON_NONDETERMINISTIC_MERGE and
// STATEMENT_TIMEOUT_IN_SECONDS (paramDefaults lists them and what they
// do); Server.Parameters shows each session's values to tests.
//
// # Injected faults
//
// Server.FailNext and FailNextWith fail the next statements matching a
// pattern with one of Snowflake's errors: 000603 internal, 000630
// statement timeout, 000606 no warehouse, 091003 stage failure, 090073
// resource monitor quota, 390114 token expired (which also ends the
// session: later requests get 390111).
//
// # Rewrites
//
// Statements are tokenized (Snowflake string literals with backslash escapes, "quoted"
// identifiers, ? and :N bind markers) and re-rendered for DuckDB:
//
//   - Unquoted identifiers are upper-cased, as Snowflake stores them, so result
//     column names come back upper-case. Quoted identifiers keep their case and
//     are resolved case-sensitively, as in Snowflake with
//     QUOTED_IDENTIFIERS_IGNORE_CASE=FALSE: "Foo" and FOO (or foo) are two
//     tables or columns. DuckDB resolves names case-insensitively, so the fake
//     gives it every name encoded (a '~' before each lower-case letter: "Foo"
//     is F~o~o in DuckDB) and decodes the names it reads back (result columns,
//     INFORMATION_SCHEMA, error messages; lex.go). A wrong-case quoted table is
//     002003 (does not exist or not authorized), a wrong-case column 000904.
//   - Types (in CREATE TABLE, ALTER TABLE, CAST and ::): NUMBER/DECIMAL/NUMERIC(p,s)
//     -> DECIMAL(min(p,38),s); INT/INTEGER/BIGINT/SMALLINT/TINYINT/BYTEINT ->
//     DECIMAL(38,0) (they are NUMBER(38,0) in Snowflake); FLOAT/DOUBLE/REAL ->
//     DOUBLE; VARCHAR/STRING/TEXT/CHAR -> VARCHAR (length not enforced);
//     BINARY/VARBINARY -> BLOB; TIMESTAMP/TIMESTAMP_NTZ/DATETIME -> TIMESTAMP;
//     TIMESTAMP_TZ/TIMESTAMP_LTZ -> TIMESTAMPTZ; VARIANT/OBJECT/ARRAY -> JSON;
//     DATE, TIME, BOOLEAN unchanged. GEOGRAPHY, VECTOR, DECFLOAT are rejected.
//     DuckDB keeps no VARCHAR or BINARY lengths: the fake keeps those declared in
//     CREATE TABLE, ADD COLUMN and ALTER COLUMN … SET DATA TYPE (following RENAME
//     and DROP COLUMN) and reports them in the metadata of SELECT * FROM one
//     table; other queries report Snowflake's maximum. INSERT, UPDATE, MERGE,
//     COPY and CREATE TABLE (cols) AS into a table with declared lengths run in
//     a transaction and fail with 100078 (rolled back) when they leave a longer
//     value (enforce.go). CREATE TABLE with column definitions AS SELECT
//     becomes CREATE TABLE then INSERT … SELECT (by position), as DuckDB has no
//     such CTAS.
//   - PRIMARY KEY, UNIQUE and FOREIGN KEY constraints are dropped: Snowflake does
//     not enforce them (only NOT NULL), so the fake must not reject duplicates.
//     The columns of a PRIMARY KEY become NOT NULL, as Snowflake makes them.
//     TRANSIENT, CLUSTER BY, COPY GRANTS and KEY=value table options are dropped.
//   - Qualified references to a session's temporary tables are pointed at DuckDB's
//     temp catalog. IFF, NVL, PARSE_JSON, OBJECT_CONSTRUCT, ARRAY_CONSTRUCT and
//     SYSDATE are renamed to DuckDB equivalents.
//   - GET, OBJECT_INSERT, OBJECT_KEYS and ARRAY_SIZE are not rewritten: each
//     session's DuckDB connection has macros of those names with Snowflake's
//     semantics (semistructured.go), e.g. OBJECT_INSERT leaves a SQL NULL value
//     out and refuses an existing key without updateFlag.
//
// # Known differences from Snowflake
//
// What the fake does differently, and what a test against it therefore
// cannot show (the driver's live test covers what it can):
//
//	Area                     Snowflake                                  fakesnowflake
//	quoted identifiers       "id" and ID are different columns          same (names encoded for DuckDB); a name
//	                                                                    holding '~' reads as itself, but DuckDB's
//	                                                                    names of unnamed expressions containing '~'
//	                                                                    lose it
//	VARCHAR(n), BINARY(n)    longer values fail (100078)                same for INSERT, UPDATE, MERGE, COPY and
//	                                                                    CREATE TABLE (cols) AS (a probe after the write;
//	                                                                    inside a transaction it aborts the transaction)
//	INFORMATION_SCHEMA       many views and columns                     only COLUMNS, with the columns above; TIME and
//	                                                                    TIMESTAMP precision always 9, OBJECT and ARRAY
//	                                                                    shown as VARIANT, TIMESTAMP_LTZ as TIMESTAMP_TZ
//	ALTER … SET DATA TYPE    refuses a new scale, a shorter VARCHAR or  same (040052); a BINARY length change and a
//	                         another type family (040052)               NUMBER precision cut are left to DuckDB's
//	                                                                    conversion
//	TLS                      HTTPS, certificates from public CAs,       HTTPS with Config.TLS (a CA made at Start, no
//	                         OCSP                                       OCSP responder), or plain HTTP
//	timestamps               nanoseconds; TIMESTAMP_TZ keeps the offset microseconds; TIMESTAMP_TZ returned at UTC
//	                         years 1 to 9999                            same
//	AUTO date/time parsing   Snowflake's AUTO formats                   DuckDB's parser
//	*_INPUT_FORMAT not AUTO  values parsed with that format             COPY into such a column fails (100035, 100040,
//	                                                                    100108), even when every value is NULL
//	failed statement in a    only that statement is rolled back         the transaction is aborted; COMMIT then fails
//	transaction                                                         with an explanatory error
//	CSV escapes              ESCAPE_UNENCLOSED_FIELD interpreted        only NONE accepted
//	login parameters         SESSION_PARAMETERS applied                 same; an unknown name fails the login
//	privileges, warehouses   enforced; no warehouse fails DML (000606)  none; 000606 only by FailNextWith
//	LOCK_TIMEOUT             bounds waits for locks                     stored and shown only
//	nondeterministic MERGE   100090 when a target row matches twice     same, by a probe query (skipped with binds in
//	                                                                    USING or ON)
//	error messages           Snowflake's text                           Snowflake's numbers (errors.go, faults.go:
//	                                                                    100039 out of range, 100038 not a number,
//	                                                                    100072 NULL into NOT NULL, 100078 too long),
//	                                                                    DuckDB's text after Snowflake's first words

package fakesnowflake
