package fakesnowflake

import (
	"strings"
)

// The Snowflake error numbers a test can inject with FailNextWith. Each
// fails the statement the way Snowflake reports that condition (number,
// SQLSTATE, message); FaultTokenExpired also ends the session.
const (
	// FaultInternal: an internal, transient failure (000603, XX000).
	FaultInternal = "000603"
	// FaultStatementTimeout: STATEMENT_TIMEOUT_IN_SECONDS reached (000630,
	// 57014).
	FaultStatementTimeout = "000630"
	// FaultNoWarehouse: no active warehouse for the session (000606, 57P03).
	FaultNoWarehouse = "000606"
	// FaultStageFailure: the stage's cloud storage failed (091003, 22000):
	// an infrastructure failure under a data-exception SQLSTATE.
	FaultStageFailure = "091003"
	// FaultResourceMonitor: the warehouse's resource monitor quota is
	// exhausted (090073, 22000).
	FaultResourceMonitor = "090073"
	// FaultTokenExpired: the session's authentication token expired
	// (390114, 08001). The session is gone afterwards: every later request
	// with its token fails with 390111 until the client logs in again.
	FaultTokenExpired = "390114"
)

// faultErrors are the replies of the injectable faults.
var faultErrors = map[string]sfError{
	FaultInternal: {code: FaultInternal, sqlState: "XX000",
		msg: "SQL execution internal error: Processing aborted due to error 300005:1 (injected by fakesnowflake)"},
	FaultStatementTimeout: {code: FaultStatementTimeout, sqlState: "57014",
		msg: "Statement reached its statement or warehouse timeout of 60 second(s) and was canceled. (injected by fakesnowflake)"},
	FaultNoWarehouse: {code: FaultNoWarehouse, sqlState: "57P03",
		msg: "No active warehouse selected in the current session. Select an active warehouse with the 'use warehouse' command. (injected by fakesnowflake)"},
	FaultStageFailure: {code: FaultStageFailure, sqlState: "22000",
		msg: "Failure using stage area. Cause: [Access Denied (Status Code: 403)] (injected by fakesnowflake)"},
	FaultResourceMonitor: {code: FaultResourceMonitor, sqlState: "22000",
		msg: "Warehouse 'LOAD_WH' cannot be resumed because resource monitor 'RM' has exceeded its quota. (injected by fakesnowflake)"},
	FaultTokenExpired: {code: FaultTokenExpired, sqlState: "08001",
		msg: "Authentication token has expired.  The user must authenticate again. (injected by fakesnowflake)"},
}

// fault is a FailNextWith request: the next n statements whose text
// contains pattern fail with code.
type fault struct {
	pattern string
	code    string
	n       int
}

// FailNext is FailNextWith(pattern, n, FaultInternal): what a client sees
// when the service fails mid-batch.
func (s *Server) FailNext(pattern string, n int) { s.FailNextWith(pattern, n, FaultInternal) }

// FailNextWith makes the next n statements whose SQL text contains pattern
// (case-insensitive) fail without running, with the error Snowflake gives
// for code (one of the Fault… constants; any other code panics). The
// session and any open transaction stay as they were, so the client
// decides whether to roll back, except for FaultTokenExpired, which ends
// the session. For tests of retries; n <= 0 removes pending faults for
// pattern.
func (s *Server) FailNextWith(pattern string, n int, code string) {
	if _, ok := faultErrors[code]; !ok {
		panic("fakesnowflake: FailNextWith: no injectable fault " + code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := strings.ToUpper(pattern)
	kept := s.faults[:0]
	for _, f := range s.faults {
		if f.pattern != p {
			kept = append(kept, f)
		}
	}
	s.faults = kept
	if n > 0 {
		s.faults = append(s.faults, &fault{pattern: p, code: code, n: n})
	}
}

// injectedFault returns the error for sqlText when a FailNextWith request
// matches it, counting it down, and applies its effect on ss.
func (s *Server) injectedFault(ss *session, sqlText string) error {
	s.mu.Lock()
	text := strings.ToUpper(sqlText)
	var hit *fault
	for i, f := range s.faults {
		if !strings.Contains(text, f.pattern) {
			continue
		}
		if f.n--; f.n <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		hit = f
		break
	}
	if hit == nil {
		s.mu.Unlock()
		return nil
	}
	gone := false
	if hit.code == FaultTokenExpired && s.sessions[ss.token] == ss {
		delete(s.sessions, ss.token)
		delete(s.masters, ss.masterToken)
		gone = true
	}
	s.mu.Unlock()
	if gone {
		if err := ss.close(); err != nil {
			s.log.Warn("fakesnowflake: close session after injected token expiry", "session", ss.id, "err", err)
		}
	}
	e := faultErrors[hit.code]
	return &e
}
