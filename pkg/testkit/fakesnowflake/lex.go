package fakesnowflake

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tokKind classifies a lexical token of Snowflake SQL.
type tokKind int

const (
	tkSpace  tokKind = iota // whitespace and comments; lex folds them into token.sp
	tkWord                  // unquoted identifier or keyword; val is upper-cased
	tkQuoted                // "quoted identifier"; val is the unescaped name
	tkString                // 'string' or $$string$$; val is the decoded content
	tkNumber                // numeric literal
	tkParam                 // bind placeholder: ? or :N; val is "" for ? and "N" for :N
	tkPunct                 // operators and punctuation
)

// token is one lexical unit. text is the original spelling; val is the normalized
// value (see tokKind).
type token struct {
	kind tokKind
	text string
	val  string
	pos  int
	sp   bool // whitespace or a comment preceded the token
}

// isWord reports whether t is the unquoted word w (w must be upper case).
func (t token) isWord(w string) bool { return t.kind == tkWord && t.val == w }

// isPunct reports whether t is the punctuation p.
func (t token) isPunct(p string) bool { return t.kind == tkPunct && t.text == p }

// isIdent reports whether t can name an object (a word or a quoted identifier).
func (t token) isIdent() bool { return t.kind == tkWord || t.kind == tkQuoted }

// lex splits Snowflake SQL into significant tokens. It decodes Snowflake string literals, which,
// unlike DuckDB's, honour backslash escapes, so that render can re-encode them for
// DuckDB.
func lex(sql string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(sql) {
		c := sql[i]
		start := i
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			for i < len(sql) && strings.IndexByte(" \t\n\r\f", sql[i]) >= 0 {
				i++
			}
			toks = append(toks, token{kind: tkSpace, text: sql[start:i], pos: start})
		case c == '-' && strings.HasPrefix(sql[i:], "--"), c == '/' && strings.HasPrefix(sql[i:], "//"):
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			toks = append(toks, token{kind: tkSpace, text: " ", pos: start})
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment at offset %d", i)
			}
			i += end + 4
			toks = append(toks, token{kind: tkSpace, text: " ", pos: start})
		case c == '\'':
			val, n, err := lexString(sql[i:])
			if err != nil {
				return nil, fmt.Errorf("string literal at offset %d: %w", i, err)
			}
			i += n
			toks = append(toks, token{kind: tkString, text: sql[start:i], val: val, pos: start})
		case c == '$' && strings.HasPrefix(sql[i:], "$$"):
			end := strings.Index(sql[i+2:], "$$")
			if end < 0 {
				return nil, fmt.Errorf("unterminated $$ string at offset %d", i)
			}
			i += end + 4
			toks = append(toks, token{kind: tkString, text: sql[start:i], val: sql[start+2 : i-2], pos: start})
		case c == '"':
			var b strings.Builder
			i++
			for {
				if i >= len(sql) {
					return nil, fmt.Errorf("unterminated quoted identifier at offset %d", start)
				}
				if sql[i] == '"' {
					if i+1 < len(sql) && sql[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(sql[i])
				i++
			}
			toks = append(toks, token{kind: tkQuoted, text: sql[start:i], val: b.String(), pos: start})
		case isIdentStart(c):
			for i < len(sql) && isIdentPart(sql[i]) {
				i++
			}
			w := sql[start:i]
			toks = append(toks, token{kind: tkWord, text: w, val: strings.ToUpper(w), pos: start})
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9':
			for i < len(sql) && (sql[i] >= '0' && sql[i] <= '9' || sql[i] == '.') {
				i++
			}
			if i < len(sql) && (sql[i] == 'e' || sql[i] == 'E') {
				j := i + 1
				if j < len(sql) && (sql[j] == '+' || sql[j] == '-') {
					j++
				}
				if j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
					i = j
					for i < len(sql) && sql[i] >= '0' && sql[i] <= '9' {
						i++
					}
				}
			}
			toks = append(toks, token{kind: tkNumber, text: sql[start:i], pos: start})
		case c == '?':
			i++
			toks = append(toks, token{kind: tkParam, text: "?", pos: start})
		case c == ':' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9' && (i == 0 || sql[i-1] != ':'):
			i++
			for i < len(sql) && sql[i] >= '0' && sql[i] <= '9' {
				i++
			}
			toks = append(toks, token{kind: tkParam, text: sql[start:i], val: sql[start+1 : i], pos: start})
		default:
			n := 1
			for _, op := range []string{"::", "<=", ">=", "<>", "!=", "||", "=>", "->>", "->"} {
				if strings.HasPrefix(sql[i:], op) {
					n = len(op)
					break
				}
			}
			if n == 1 && c >= utf8.RuneSelf {
				_, n = utf8.DecodeRuneInString(sql[i:])
			}
			i += n
			toks = append(toks, token{kind: tkPunct, text: sql[start:i], pos: start})
		}
	}
	return significant(toks), nil
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isIdentPart(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

// lexString decodes a single-quoted Snowflake string literal at the start of s and
// returns its value and length. Snowflake accepts both ” and backslash escapes.
func lexString(s string) (string, int, error) {
	var b strings.Builder
	i := 1
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i += 2
				continue
			}
			return b.String(), i + 1, nil
		case c == '\\' && i+1 < len(s):
			i++
			e := s[i]
			i++
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case '0':
				b.WriteByte(0)
			case 'x':
				if i+2 <= len(s) {
					if v, err := strconv.ParseUint(s[i:i+2], 16, 8); err == nil {
						b.WriteByte(byte(v))
						i += 2
						continue
					}
				}
				b.WriteByte('x')
			case 'u':
				if i+4 <= len(s) {
					if v, err := strconv.ParseUint(s[i:i+4], 16, 32); err == nil {
						b.WriteRune(rune(v))
						i += 4
						continue
					}
				}
				b.WriteByte('u')
			default:
				// \\, \', \" and any other escaped character stand for themselves.
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

// Snowflake resolves quoted identifiers case-sensitively ("Foo", "FOO" and
// foo, which is FOO, are two names), DuckDB case-insensitively. So every
// Snowflake name the fake gives DuckDB goes through encodeName, which
// marks each lower-case letter with a preceding '~' (and doubles '~'):
// "Foo" is F~o~o in DuckDB, "FOO" and foo are FOO, and no two Snowflake
// names that differ only in case meet in DuckDB. Names read back from
// DuckDB (result columns, catalog functions, error messages) go through
// decodeName. Upper-case names, the common case, are unchanged.
const nameMark = '~'

// encodeName is the DuckDB name of the Snowflake name n.
func encodeName(n string) string {
	if !strings.ContainsFunc(n, func(r rune) bool { return r == nameMark || unicode.IsLower(r) }) {
		return n
	}
	var b strings.Builder
	for _, r := range n {
		if r == nameMark || unicode.IsLower(r) {
			b.WriteRune(nameMark)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// decodeName is the Snowflake name of the DuckDB name n (encodeName
// reversed).
func decodeName(n string) string {
	if !strings.ContainsRune(n, nameMark) {
		return n
	}
	var b strings.Builder
	marked := false
	for _, r := range n {
		if r == nameMark && !marked {
			marked = true
			continue
		}
		marked = false
		b.WriteRune(r)
	}
	return b.String()
}

// decodeSQL is decodeName as a DuckDB expression over the name column c,
// written for lex (which reads \\ as one backslash).
func decodeSQL(c string) string {
	return `regexp_replace(` + c + `, '~(.)', '\\1', 'g')`
}

// quoteIdent quotes a Snowflake name for DuckDB (see encodeName).
func quoteIdent(name string) string {
	return quoteRaw(encodeName(name))
}

// quoteRaw quotes a name that is DuckDB's own, not a Snowflake one: a
// column of a staged file.
func quoteRaw(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// quoteString renders s as a DuckDB string literal (no backslash escapes).
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// render turns tokens back into SQL for DuckDB: unquoted words are upper-cased (the
// Snowflake identifier rule, see the package doc), quoted identifiers
// encoded (encodeName), strings are re-encoded without
// backslash escapes and :N placeholders become $N.
func render(toks []token) string {
	var b strings.Builder
	for i, t := range toks {
		if t.sp && i > 0 {
			b.WriteByte(' ')
		}
		switch t.kind {
		case tkWord:
			b.WriteString(t.val)
		case tkQuoted:
			b.WriteString(quoteIdent(t.val))
		case tkString:
			b.WriteString(quoteString(t.val))
		case tkParam:
			if t.val == "" {
				b.WriteString("?")
			} else {
				b.WriteString("$" + t.val)
			}
		default:
			b.WriteString(t.text)
		}
	}
	return b.String()
}

// significant drops whitespace and comment tokens, remembering on the next token
// that a separator preceded it.
func significant(toks []token) []token {
	out := make([]token, 0, len(toks))
	sp := false
	for _, t := range toks {
		if t.kind == tkSpace {
			sp = true
			continue
		}
		t.sp = sp
		sp = false
		out = append(out, t)
	}
	return out
}

// readQualifiedName reads a dotted name (a, a.b or a.b.c) starting at toks[i] of a
// significant-token slice and returns its normalized parts and the index after it.
func readQualifiedName(toks []token, i int) ([]string, int, bool) {
	if i >= len(toks) || !toks[i].isIdent() {
		return nil, i, false
	}
	parts := []string{toks[i].val}
	i++
	for i+1 < len(toks) && toks[i].isPunct(".") && toks[i+1].isIdent() && len(parts) < 3 {
		parts = append(parts, toks[i+1].val)
		i += 2
	}
	return parts, i, true
}

// matchingParen returns the index of the ')' closing the '(' at toks[open].
func matchingParen(toks []token, open int) int {
	depth := 0
	for i := open; i < len(toks); i++ {
		switch {
		case toks[i].isPunct("("):
			depth++
		case toks[i].isPunct(")"):
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}
