package fakesnowflake

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// paramDefaults are the session parameters the fake knows, with Snowflake's
// account defaults. A session's value comes from, last wins: this table,
// the user's parameters (User.Parameters, what ALTER USER … SET gives), the
// login request's SESSION_PARAMETERS, ALTER SESSION SET. Parameters that
// change what the fake does:
//
//   - QUOTED_IDENTIFIERS_IGNORE_CASE: TRUE folds quoted identifiers to
//     upper case, as unquoted ones.
//   - TIMESTAMP_INPUT_FORMAT, DATE_INPUT_FORMAT, TIME_INPUT_FORMAT: COPY
//     leaves a CSV file format's
//     formats at AUTO, which falls back to these; the fake parses AUTO only,
//     so any other value fails a COPY into a column of that kind with
//     100035 (timestamp), 100040 (date) or 100108 (time) unless the file
//     format names its own format.
//   - ERROR_ON_NONDETERMINISTIC_MERGE: FALSE skips the duplicate-row check
//     of MERGE (Snowflake then updates with an arbitrary source row).
//   - STATEMENT_TIMEOUT_IN_SECONDS: a statement running longer fails with
//     000630.
//
// The others are stored and shown by SHOW PARAMETERS only.
var paramDefaults = map[string]string{
	"QUOTED_IDENTIFIERS_IGNORE_CASE":   "false",
	"TIMESTAMP_INPUT_FORMAT":           "AUTO",
	"DATE_INPUT_FORMAT":                "AUTO",
	"TIME_INPUT_FORMAT":                "AUTO",
	"BINARY_INPUT_FORMAT":              "HEX",
	"ERROR_ON_NONDETERMINISTIC_MERGE":  "true",
	"ERROR_ON_NONDETERMINISTIC_UPDATE": "false",
	"LOCK_TIMEOUT":                     "43200",
	"STATEMENT_TIMEOUT_IN_SECONDS":     "172800",
	"TIMEZONE":                         "America/Los_Angeles",
	"TIMESTAMP_TYPE_MAPPING":           "TIMESTAMP_NTZ",
	"AUTOCOMMIT":                       "true",
	"QUERY_TAG":                        "",
	"CLIENT_SESSION_KEEP_ALIVE":        "false",
	"TRANSACTION_ABORT_ON_ERROR":       "false",
	"JSON_INDENT":                      "2",
	"ABORT_DETACHED_QUERY":             "false",
	"ROWS_PER_RESULTSET":               "0",
	"STRICT_JSON_OUTPUT":               "false",
	"USE_CACHED_RESULT":                "true",
}

// clientOnlyParams arrive in a login's SESSION_PARAMETERS but are the
// client's own settings, not session parameters: accepted and ignored.
var clientOnlyParams = map[string]bool{
	"CLIENT_VALIDATE_DEFAULT_PARAMETERS": true,
	"CLIENT_REQUEST_MFA_TOKEN":           true,
	"CLIENT_STORE_TEMPORARY_CREDENTIAL":  true,
}

// newParams is a session's starting parameters for a user.
func newParams(user map[string]string) map[string]string {
	p := make(map[string]string, len(paramDefaults))
	for k, v := range paramDefaults {
		p[k] = v
	}
	for k, v := range user {
		p[strings.ToUpper(k)] = v
	}
	return p
}

// setParam sets a known parameter; ok is false for an unknown one.
func setParam(p map[string]string, name, value string) bool {
	name = strings.ToUpper(name)
	if _, ok := paramDefaults[name]; !ok {
		return false
	}
	p[name] = value
	return true
}

// param reads a parameter of the session (under ss.mu).
func (ss *session) param(name string) string { return ss.params[name] }

func (ss *session) paramTrue(name string) bool { return strings.EqualFold(ss.params[name], "true") }

// Parameters returns the effective parameters of every live session of
// user (upper-cased), for tests that check what a client pinned.
func (s *Server) Parameters(user string) []map[string]string {
	s.mu.Lock()
	var sessions []*session
	for _, ss := range s.sessions {
		if ss.user == strings.ToUpper(user) {
			sessions = append(sessions, ss)
		}
	}
	s.mu.Unlock()
	sort.Slice(sessions, func(i, j int) bool { return sessions[i].id < sessions[j].id })
	var out []map[string]string
	for _, ss := range sessions {
		ss.mu.Lock()
		m := make(map[string]string, len(ss.params))
		for k, v := range ss.params {
			m[k] = v
		}
		ss.mu.Unlock()
		out = append(out, m)
	}
	return out
}

// runAlterSession handles ALTER SESSION SET k = v [, k = v …] and ALTER
// SESSION UNSET k [, k …]. An unknown parameter fails as in Snowflake.
func (ss *session) runAlterSession(toks []token) (*result, error) {
	if len(toks) < 4 || !(toks[2].isWord("SET") || toks[2].isWord("UNSET")) {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nALTER SESSION needs SET or UNSET"}
	}
	unset := toks[2].isWord("UNSET")
	for _, item := range splitTopLevel(toks[3:]) {
		if len(item) == 0 || item[0].kind != tkWord {
			return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nexpected a parameter name"}
		}
		name := item[0].val
		if _, ok := paramDefaults[name]; !ok {
			return nil, &sfError{code: "001006", sqlState: "22023", msg: "SQL compilation error:\ninvalid parameter '" + name + "'"}
		}
		if unset {
			ss.params[name] = ss.srv.userParam(ss.user, name)
			continue
		}
		if len(item) != 3 || !item[1].isPunct("=") {
			return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nexpected " + name + " = <value>"}
		}
		v := item[2]
		switch v.kind {
		case tkString:
			ss.params[name] = v.val
		default:
			ss.params[name] = v.text
		}
	}
	return statusResult(stmtAltSess, "Statement executed successfully."), nil
}

// userParam is a parameter's value for a user without session overrides.
func (s *Server) userParam(user, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.userParams[user][name]; ok {
		return v
	}
	return paramDefaults[name]
}

// showParameters answers SHOW PARAMETERS [LIKE '<pattern>'] [IN SESSION]
// with the columns key, value, default, level.
func (ss *session) showParameters(toks []token) (*result, error) {
	like := ""
	for i := 2; i+1 < len(toks); i++ {
		if toks[i].isWord("LIKE") && toks[i+1].kind == tkString {
			like = strings.ToUpper(toks[i+1].val)
		}
	}
	var names []string
	for k := range ss.params {
		if like == "" || likeMatch(like, k) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	res := &result{stmtType: stmtSelect}
	for _, c := range []string{"key", "value", "default", "level"} {
		res.columns = append(res.columns, column{Name: c, Type: "text", Length: 16777216, Nullable: true})
	}
	for _, k := range names {
		level := ""
		if ss.params[k] != paramDefaults[k] {
			level = "SESSION"
		}
		res.rows = append(res.rows, []*string{strp(k), strp(ss.params[k]), strp(paramDefaults[k]), strp(level)})
	}
	return res, nil
}

// likeMatch is SQL LIKE with % and _ (upper-cased operands).
func likeMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '%':
		for i := 0; i <= len(s); i++ {
			if likeMatch(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '_':
		return s != "" && likeMatch(pattern[1:], s[1:])
	}
	return s != "" && s[0] == pattern[0] && likeMatch(pattern[1:], s[1:])
}

// applyLoginParams sets the login request's SESSION_PARAMETERS. Unknown
// names fail the login, as Snowflake refuses them.
func (ss *session) applyLoginParams(in map[string]any) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, v := range in {
		name := strings.ToUpper(k)
		if clientOnlyParams[name] {
			continue
		}
		if !setParam(ss.params, name, fmt.Sprint(v)) {
			return fmt.Errorf("invalid session parameter %q in the login request", k)
		}
	}
	return nil
}

// errStatementTimeout is Snowflake's answer to a statement running past
// STATEMENT_TIMEOUT_IN_SECONDS.
var errStatementTimeout = &sfError{code: "000630", sqlState: "57014",
	msg: "Statement reached its statement or warehouse timeout and was canceled."}

// statementTimeout is STATEMENT_TIMEOUT_IN_SECONDS (0: none, as in
// Snowflake, where 0 means the maximum).
func (ss *session) statementTimeout() time.Duration {
	n, err := strconv.Atoi(ss.param("STATEMENT_TIMEOUT_IN_SECONDS"))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// inputFormatError is the COPY failure for a CSV value of a date, time or
// timestamp column when the session's input format for it is not AUTO and
// the file format names none: Snowflake would parse the value with that
// format, the fake parses AUTO only. typ is the DuckDB type of the column.
func (ss *session) inputFormatError(typ string, f copyFormat) *sfError {
	var param, own, code, kind string
	switch {
	case strings.HasPrefix(typ, "TIMESTAMP"):
		param, own, code, kind = "TIMESTAMP_INPUT_FORMAT", f.timestampFormat, "100035", "Timestamp"
	case typ == "DATE":
		param, own, code, kind = "DATE_INPUT_FORMAT", f.dateFormat, "100040", "Date"
	case strings.HasPrefix(typ, "TIME"):
		param, own, code, kind = "TIME_INPUT_FORMAT", f.timeFormat, "100108", "Time"
	default:
		return nil
	}
	if own != "" && !strings.EqualFold(own, "AUTO") {
		return &sfError{code: "002040", sqlState: "0A000", msg: "SQL compilation error:\nfakesnowflake parses only AUTO " + kind + " formats in COPY"}
	}
	if own != "" || strings.EqualFold(ss.param(param), "AUTO") {
		return nil
	}
	return &sfError{code: code, sqlState: "22007", msg: kind + " is not recognized: the session's " + param + " is '" +
		ss.param(param) + "' (the file format leaves it at AUTO, which falls back to the session's)"}
}
