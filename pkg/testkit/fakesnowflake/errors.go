package fakesnowflake

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
)

// sfError is a statement failure as the client sees it: code, SQLSTATE and message.
type sfError struct {
	code     string
	sqlState string
	msg      string
}

func (e *sfError) Error() string { return e.code + " (" + e.sqlState + "): " + e.msg }

// duckMessage is DuckDB's message for err (without the Go error chain).
func duckMessage(err error) string {
	if de, ok := errorsAs[*duckdb.Error](err); ok {
		return de.Msg
	}
	return err.Error()
}

// numberOutOfRange matches DuckDB's conversion errors of a number (or a
// string holding one) to a DECIMAL too narrow for it; a string that is no
// number does not match.
var numberOutOfRange = regexp.MustCompile(`(?:Casting value|Could not convert string|Could not cast value) "?([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"? to (?:type )?'?DECIMAL`)

// toSnowflakeError maps an execution error to Snowflake's code and SQLSTATE. The
// codes are the ones Snowflake uses for the same situation, so drivers that
// classify errors by code (retryable or not) can be tested; the message keeps
// DuckDB's text, which names the column or value at fault.
func toSnowflakeError(err error) *sfError {
	if se, ok := errorsAs[*sfError](err); ok {
		return se
	}
	if ue, ok := errorsAs[*errUnsupported](err); ok {
		return &sfError{code: "002040", sqlState: "0A000", msg: "SQL compilation error:\n" + ue.Error()}
	}
	if errors.Is(err, context.Canceled) {
		return &sfError{code: "000604", sqlState: "57014", msg: "SQL execution canceled"}
	}
	de, ok := errorsAs[*duckdb.Error](err)
	if !ok {
		return &sfError{code: "000603", sqlState: "XX000", msg: "SQL execution internal error: " + err.Error()}
	}
	msg := decodeName(de.Msg) // the names in it as the client wrote them
	switch de.Type {
	case duckdb.ErrorTypeConstraint:
		if strings.Contains(msg, "NOT NULL") {
			return &sfError{code: "100072", sqlState: "22000", msg: "NULL result in a non-nullable column: " + msg}
		}
		return &sfError{code: "100072", sqlState: "23000", msg: "Constraint violation: " + msg}
	case duckdb.ErrorTypeParser, duckdb.ErrorTypeSyntax:
		return &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nsyntax error: " + msg}
	case duckdb.ErrorTypeCatalog:
		if strings.Contains(msg, "already exists") {
			return &sfError{code: "002002", sqlState: "42710", msg: "SQL compilation error:\nObject already exists: " + msg}
		}
		return &sfError{code: "002003", sqlState: "42S02", msg: "SQL compilation error:\nObject does not exist or not authorized: " + msg}
	case duckdb.ErrorTypeBinder:
		if strings.Contains(msg, "not found") || strings.Contains(msg, "does not have a column") {
			return &sfError{code: "000904", sqlState: "42000", msg: "SQL compilation error:\ninvalid identifier: " + msg}
		}
		return &sfError{code: "002020", sqlState: "42601", msg: "SQL compilation error:\n" + msg}
	case duckdb.ErrorTypeConversion, duckdb.ErrorTypeInvalidInput:
		if m := numberOutOfRange.FindStringSubmatch(msg); m != nil {
			// A number that does not fit NUMBER(p,s) is Snowflake's 100039
			// (22003), not a value it cannot read.
			return &sfError{code: "100039", sqlState: "22003", msg: "Numeric value '" + m[1] + "' is out of range: " + msg}
		}
		return &sfError{code: "100038", sqlState: "22018", msg: "Value conversion failed: " + msg}
	case duckdb.ErrorTypeOutOfRange, duckdb.ErrorTypeDecimal:
		return &sfError{code: "100046", sqlState: "22003", msg: "Number out of representable range: " + msg}
	case duckdb.ErrorTypeDivideByZero:
		return &sfError{code: "100051", sqlState: "22012", msg: "Division by zero: " + msg}
	case duckdb.ErrorTypeTransaction:
		return &sfError{code: "000625", sqlState: "40001", msg: "Transaction conflict: " + msg}
	case duckdb.ErrorTypeInterrupt:
		return &sfError{code: "000604", sqlState: "57014", msg: "SQL execution canceled: " + msg}
	case duckdb.ErrorTypeIO:
		return &sfError{code: "100080", sqlState: "58030", msg: "File access failed: " + msg}
	}
	return &sfError{code: "000603", sqlState: "XX000", msg: "SQL execution error: " + msg}
}
