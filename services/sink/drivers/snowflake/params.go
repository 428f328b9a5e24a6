package snowflake

import "strings"

// sessionParam is a Snowflake session parameter the driver sets at login,
// whatever the account or the user sets: every value the driver relies on
// is pinned, so an account-level or user-level setting cannot change what
// a statement means. docs/snowflake.md lists them.
type sessionParam struct {
	name, value string
}

// sessionParams are set on every session the driver (and Check) opens.
var sessionParams = []sessionParam{
	// COPY leaves the CSV file format's DATE_FORMAT, TIME_FORMAT and
	// TIMESTAMP_FORMAT at AUTO, which falls back to these: the staged
	// values are ISO 8601, which AUTO reads without ambiguity.
	{"TIMESTAMP_INPUT_FORMAT", "AUTO"},
	{"DATE_INPUT_FORMAT", "AUTO"},
	{"TIME_INPUT_FORMAT", "AUTO"},
	// Every identifier is quoted and its case meant (docs/snowflake.md,
	// Names); TRUE would fold "OrderLines" to ORDERLINES and the driver
	// would never find the columns it created.
	{"QUOTED_IDENTIFIERS_IGNORE_CASE", "FALSE"},
	// A MERGE whose target row two source rows match must fail, never
	// update with an arbitrary one.
	{"ERROR_ON_NONDETERMINISTIC_MERGE", "TRUE"},
	// DDL and PUT run outside the batch's transaction and must commit on
	// their own; the batch's statements run between BEGIN and COMMIT.
	{"AUTOCOMMIT", "TRUE"},
	// The defaults are 12 hours and 2 days: a batch stuck behind another
	// writer's lock, or a statement stuck in a queue, fails within these
	// and is retried (000630, transient) instead of stalling the sink.
	{"LOCK_TIMEOUT", "600"},
	{"STATEMENT_TIMEOUT_IN_SECONDS", "3600"},
	// The session holds the temporary staging tables: keep it alive
	// between sparse batches rather than lose them to expiry.
	{"CLIENT_SESSION_KEEP_ALIVE", "TRUE"},
	// Lets users find (and attribute warehouse credits to) Rosetta's
	// statements in QUERY_HISTORY.
	{"QUERY_TAG", "rosetta-sink"},
}

// sessionParamMap is sessionParams in gosnowflake's Config.Params form,
// sent as the login's session parameters. Its keys are lower case: that is
// how gosnowflake looks up the ones it acts on itself
// (client_session_keep_alive starts its heartbeat).
func sessionParamMap() map[string]*string {
	m := make(map[string]*string, len(sessionParams))
	for _, p := range sessionParams {
		v := p.value
		m[strings.ToLower(p.name)] = &v
	}
	return m
}
