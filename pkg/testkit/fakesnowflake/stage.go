package fakesnowflake

import (
	"context"
	"crypto/md5" //nolint:gosec // LIST reports an md5 column like Snowflake; not used for security
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Internal stages are directories under the server's stage directory:
//
//	tables/<DB>/<SCHEMA>/<TABLE>/      table stage @%T of a permanent table
//	stages/<DB>/<SCHEMA>/<STAGE>/      named stage @S (CREATE STAGE)
//	users/<USER>/                      user stage @~
//	sessions/<id>/tables/<TABLE>/      table stage of a session's temp table
//	sessions/<id>/stages/<STAGE>/      temporary named stage
//
// The client writes PUT files there itself (LOCAL_FS stage type).

func pathPart(name string) string { return url.PathEscape(name) }

func (s *Server) sessionStageRoot(id int64) string {
	return filepath.Join(s.stageDir, "sessions", strconv.FormatInt(id, 10))
}

// stageRef is a parsed @stage[/path] reference.
type stageRef struct {
	text  string   // as written, for messages
	kind  byte     // '%' table stage, '~' user stage, '@' named stage
	parts []string // normalized qualified name (table or stage)
	sub   string   // path inside the stage, without leading slash
}

// parseStageRef parses a stage reference at the start of s (which begins with '@' or
// a quote) and returns it with the rest of s.
func parseStageRef(s string) (stageRef, string, error) {
	s = strings.TrimLeft(s, " \t\r\n")
	var raw, rest string
	if strings.HasPrefix(s, "'") {
		end := strings.Index(s[1:], "'")
		if end < 0 {
			return stageRef{}, "", fmt.Errorf("unterminated quoted stage reference")
		}
		raw, rest = s[1:end+1], s[end+2:]
	} else {
		end := len(s)
		inQuote := false
		for i, c := range s {
			if c == '"' {
				inQuote = !inQuote
			}
			if !inQuote && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ')' || c == ';') {
				end = i
				break
			}
		}
		raw, rest = s[:end], s[end:]
	}
	if !strings.HasPrefix(raw, "@") {
		return stageRef{}, "", fmt.Errorf("expected a stage reference starting with @, got %q", raw)
	}
	ref := stageRef{text: raw}
	body := raw[1:]
	if strings.HasPrefix(body, "~") {
		ref.kind = '~'
		ref.sub = strings.Trim(body[1:], "/")
		return ref, rest, nil
	}
	// Split name from path at the first '/' outside quotes.
	nameEnd := len(body)
	inQuote := false
	for i, c := range body {
		if c == '"' {
			inQuote = !inQuote
		}
		if c == '/' && !inQuote {
			nameEnd = i
			break
		}
	}
	name, sub := body[:nameEnd], strings.Trim(body[nameEnd:], "/")
	ref.sub = sub
	ref.kind = '@'
	// The table-stage marker % sits before the last name part (@db.schema.%t).
	if i := strings.LastIndex(name, "%"); i >= 0 && (i == 0 || name[i-1] == '.') {
		ref.kind = '%'
		name = name[:i] + name[i+1:]
	}
	toks, err := lex(name)
	if err != nil {
		return stageRef{}, "", fmt.Errorf("stage name %q: %w", name, err)
	}
	parts, next, ok := readQualifiedName(toks, 0)
	if !ok || next != len(toks) {
		return stageRef{}, "", fmt.Errorf("invalid stage name %q", name)
	}
	ref.parts = parts
	return ref, rest, nil
}

// stageDirFor resolves a stage reference to its directory (without the sub path)
// and, for table stages, the load-history key of the table.
func (ss *session) stageDirFor(ctx context.Context, ref stageRef) (dir, tableKey string, err error) {
	root := ss.srv.stageDir
	switch ref.kind {
	case '~':
		return filepath.Join(root, "users", pathPart(ss.user)), "", nil
	case '%':
		if t, ok := ss.lookupTemp(ref.parts); ok {
			dir := filepath.Join(ss.srv.sessionStageRoot(ss.id), "tables", pathPart(t.name))
			return dir, fmt.Sprintf("session/%d/%s", ss.id, t.name), nil
		}
		db, schema, name, ok := ss.findTable(ctx, ref.parts)
		if !ok {
			return "", "", &sfError{code: "002003", sqlState: "02000",
				msg: fmt.Sprintf("SQL compilation error:\nTable '%s' does not exist or not authorized (stage %s).", strings.Join(ref.parts, "."), ref.text)}
		}
		return filepath.Join(root, "tables", pathPart(db), pathPart(schema), pathPart(name)), tableLoadKey(db, schema, name), nil
	default:
		name := ref.parts[len(ref.parts)-1]
		if len(ref.parts) == 1 {
			tmp := filepath.Join(ss.srv.sessionStageRoot(ss.id), "stages", pathPart(name))
			if fi, err := os.Stat(tmp); err == nil && fi.IsDir() {
				return tmp, "", nil
			}
		}
		db, schema, _ := ss.qualify(ref.parts)
		dir := filepath.Join(root, "stages", pathPart(db), pathPart(schema), pathPart(name))
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return "", "", &sfError{code: "002003", sqlState: "02000",
				msg: fmt.Sprintf("SQL compilation error:\nStage '%s.%s.%s' does not exist or not authorized.", db, schema, name)}
		}
		return dir, "", nil
	}
}

func tableLoadKey(db, schema, name string) string { return "table/" + db + "/" + schema + "/" + name }

// findTable looks a permanent table up in DuckDB's catalog by its exact
// (case-sensitive) names, as Snowflake resolves them.
func (ss *session) findTable(ctx context.Context, parts []string) (db, schema, name string, ok bool) {
	qdb, qschema, qname := ss.qualify(parts)
	err := ss.conn.QueryRowContext(ctx, `SELECT database_name, schema_name, table_name FROM duckdb_tables()
		WHERE NOT temporary AND database_name = ? AND schema_name = ? AND table_name = ?`,
		encodeName(qdb), encodeName(qschema), encodeName(qname)).Scan(&db, &schema, &name)
	return decodeName(db), decodeName(schema), decodeName(name), err == nil
}

// forgetTable drops a table's stage and load history when the table is dropped or
// replaced, as Snowflake does with the table stage.
func (s *Server) forgetTable(ss *session, db, schema, name string, temporary bool) {
	var dir, key string
	if temporary {
		dir = filepath.Join(s.sessionStageRoot(ss.id), "tables", pathPart(name))
		key = fmt.Sprintf("session/%d/%s", ss.id, name)
	} else {
		dir = filepath.Join(s.stageDir, "tables", pathPart(db), pathPart(schema), pathPart(name))
		key = tableLoadKey(db, schema, name)
	}
	_ = os.RemoveAll(dir)
	s.mu.Lock()
	delete(s.loads, key)
	if !temporary {
		delete(s.lengths, key)
		delete(s.added, key)
	}
	s.mu.Unlock()
}

func (ss *session) createStage(ctx context.Context, toks []token, i int, orReplace, temporary bool) (*result, error) {
	if err := ss.implicitCommit(ctx); err != nil {
		return nil, err
	}
	ifNotExists := false
	if i+2 < len(toks) && toks[i].isWord("IF") && toks[i+1].isWord("NOT") && toks[i+2].isWord("EXISTS") {
		ifNotExists, i = true, i+3
	}
	parts, next, ok := readQualifiedName(toks, i)
	if !ok {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nCREATE STAGE needs a name"}
	}
	for _, t := range toks[next:] {
		if t.isWord("URL") || t.isWord("STORAGE_INTEGRATION") {
			return nil, unsupported("external stages (URL=...)")
		}
	}
	name := parts[len(parts)-1]
	var dir string
	if temporary {
		dir = filepath.Join(ss.srv.sessionStageRoot(ss.id), "stages", pathPart(name))
	} else {
		db, schema, _ := ss.qualify(parts)
		dir = filepath.Join(ss.srv.stageDir, "stages", pathPart(db), pathPart(schema), pathPart(name))
	}
	if _, err := os.Stat(dir); err == nil {
		switch {
		case orReplace:
			if err := os.RemoveAll(dir); err != nil {
				return nil, fmt.Errorf("replace stage %s: %w", name, err)
			}
		case ifNotExists:
			return statusResult(stmtDDL, fmt.Sprintf("%s already exists, statement succeeded.", name)), nil
		default:
			return nil, &sfError{code: "002002", sqlState: "42710", msg: fmt.Sprintf("SQL compilation error:\nObject '%s' already exists.", name)}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create stage %s: %w", name, err)
	}
	return statusResult(stmtDDL, fmt.Sprintf("Stage area %s successfully created.", name)), nil
}

func (ss *session) dropStage(parts []string, ifExists bool) (*result, error) {
	name := parts[len(parts)-1]
	candidates := []string{}
	if len(parts) == 1 {
		candidates = append(candidates, filepath.Join(ss.srv.sessionStageRoot(ss.id), "stages", pathPart(name)))
	}
	db, schema, _ := ss.qualify(parts)
	candidates = append(candidates, filepath.Join(ss.srv.stageDir, "stages", pathPart(db), pathPart(schema), pathPart(name)))
	for _, dir := range candidates {
		if _, err := os.Stat(dir); err == nil {
			if err := os.RemoveAll(dir); err != nil {
				return nil, fmt.Errorf("drop stage %s: %w", name, err)
			}
			return statusResult(stmtDDL, fmt.Sprintf("%s successfully dropped.", name)), nil
		}
	}
	if ifExists {
		return statusResult(stmtDDL, fmt.Sprintf("Drop statement executed successfully (%s already dropped).", name)), nil
	}
	return nil, &sfError{code: "002003", sqlState: "02000", msg: fmt.Sprintf("SQL compilation error:\nStage '%s' does not exist or not authorized.", name)}
}

// --- PUT ---------------------------------------------------------------------------

// runPut answers PUT with the upload command; the client then copies (and gzips,
// unless the file is already compressed or Parquet) the files into the stage
// directory itself.
func (ss *session) runPut(ctx context.Context, sqlText string) (*result, error) {
	rest := strings.TrimSpace(sqlText)
	rest = strings.TrimSpace(rest[len("PUT"):])
	var src string
	if strings.HasPrefix(rest, "'") {
		end := strings.Index(rest[1:], "'")
		if end < 0 {
			return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nunterminated file path in PUT"}
		}
		src, rest = rest[1:end+1], rest[end+2:]
	} else {
		end := strings.IndexAny(rest, " \t\r\n")
		if end < 0 {
			return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nPUT needs a file and a stage"}
		}
		src, rest = rest[:end], rest[end:]
	}
	if !strings.HasPrefix(strings.ToLower(src), "file://") {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: fmt.Sprintf("SQL compilation error:\nPUT source must be file://..., got %q", src)}
	}
	src = src[len("file://"):]
	ref, rest, err := parseStageRef(rest)
	if err != nil {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\n" + err.Error()}
	}
	opts, err := parseOptions(rest)
	if err != nil {
		return nil, err
	}
	autoCompress, overwrite, parallel := true, false, int64(4)
	sourceCompression := "auto_detect"
	for k, v := range opts {
		switch k {
		case "AUTO_COMPRESS":
			autoCompress = v.bool()
		case "OVERWRITE":
			overwrite = v.bool()
		case "PARALLEL":
			if n, err := strconv.ParseInt(v.str, 10, 64); err == nil {
				parallel = n
			}
		case "SOURCE_COMPRESSION":
			sourceCompression = strings.ToLower(v.str)
		default:
			return nil, unsupported("PUT option %s", k)
		}
	}
	dir, _, err := ss.stageDirFor(ctx, ref)
	if err != nil {
		return nil, err
	}
	target := filepath.Join(dir, filepath.FromSlash(ref.sub))
	if err := os.MkdirAll(target, 0o755); err != nil {
		return nil, fmt.Errorf("create stage directory for %s: %w", ref.text, err)
	}
	return &result{stmtType: stmtPut, transfer: map[string]any{
		"command":           "UPLOAD",
		"src_locations":     []string{src},
		"autoCompress":      autoCompress,
		"sourceCompression": sourceCompression,
		"overwrite":         overwrite,
		"parallel":          parallel,
		"threshold":         200 * 1024 * 1024,
		"stageInfo": map[string]any{
			"locationType": "LOCAL_FS",
			"location":     target + string(filepath.Separator),
			"path":         ref.sub,
		},
	}}, nil
}

// --- options -----------------------------------------------------------------------

// optValue is one KEY = value of a COPY/PUT/file-format option list.
type optValue struct {
	str  string              // word, number or decoded string
	list []string            // ('a', 'b')
	sub  map[string]optValue // FILE_FORMAT = (...)
}

func (v optValue) bool() bool { return strings.EqualFold(v.str, "TRUE") }

// parseOptions parses "KEY = value ..." where value is a word, number, string, a
// parenthesized string list or a parenthesized option list.
func parseOptions(s string) (map[string]optValue, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\n" + err.Error()}
	}
	for len(toks) > 0 && toks[len(toks)-1].isPunct(";") {
		toks = toks[:len(toks)-1]
	}
	opts, i, err := parseOptionList(toks, 0)
	if err != nil {
		return nil, err
	}
	if i != len(toks) {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: fmt.Sprintf("SQL compilation error:\nunexpected %q in options", toks[i].text)}
	}
	return opts, nil
}

func parseOptionList(toks []token, i int) (map[string]optValue, int, error) {
	opts := map[string]optValue{}
	for i < len(toks) && !toks[i].isPunct(")") {
		if toks[i].isPunct(",") {
			i++
			continue
		}
		if toks[i].kind != tkWord {
			return nil, i, &sfError{code: "001003", sqlState: "42000", msg: fmt.Sprintf("SQL compilation error:\nexpected an option name at %q", toks[i].text)}
		}
		key := toks[i].val
		i++
		if i < len(toks) && toks[i].isPunct("=") {
			i++
		}
		if i >= len(toks) {
			return nil, i, &sfError{code: "001003", sqlState: "42000", msg: fmt.Sprintf("SQL compilation error:\noption %s has no value", key)}
		}
		var v optValue
		switch {
		case toks[i].isPunct("("):
			end := matchingParen(toks, i)
			if end < 0 {
				return nil, i, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nunbalanced parentheses in options"}
			}
			inner := toks[i+1 : end]
			if len(inner) > 0 && inner[0].kind == tkWord {
				sub, _, err := parseOptionList(inner, 0)
				if err != nil {
					return nil, i, err
				}
				v.sub = sub
			} else {
				for _, t := range inner {
					if t.kind == tkString {
						v.list = append(v.list, t.val)
					}
				}
				v.list = append([]string{}, v.list...)
			}
			i = end + 1
		case toks[i].kind == tkString:
			v.str = toks[i].val
			i++
		default:
			v.str = toks[i].val
			if v.str == "" {
				v.str = toks[i].text
			}
			i++
		}
		opts[key] = v
	}
	return opts, i, nil
}

// --- COPY INTO ---------------------------------------------------------------------

// copyFormat is the subset of Snowflake file format options the fake reads.
type copyFormat struct {
	typ         string // CSV or PARQUET
	delimiter   string
	skipHeader  int
	enclosedBy  string
	escape      string
	nullIf      []string
	emptyAsNull bool
	compression string
	parseHeader bool
	// DATE_FORMAT, TIME_FORMAT, TIMESTAMP_FORMAT; "" when not given (AUTO,
	// which falls back to the session's input formats).
	dateFormat, timeFormat, timestampFormat string
}

func parseFileFormat(v optValue) (copyFormat, error) {
	f := copyFormat{typ: "CSV", delimiter: ",", nullIf: []string{`\N`}, emptyAsNull: true, compression: "AUTO"}
	for k, o := range v.sub {
		switch k {
		case "TYPE":
			f.typ = strings.ToUpper(o.str)
		case "FIELD_DELIMITER":
			f.delimiter = o.str
		case "SKIP_HEADER":
			n, err := strconv.Atoi(o.str)
			if err != nil {
				return f, fmt.Errorf("SKIP_HEADER: %w", err)
			}
			f.skipHeader = n
		case "FIELD_OPTIONALLY_ENCLOSED_BY":
			if !strings.EqualFold(o.str, "NONE") {
				f.enclosedBy = o.str
			}
		case "ESCAPE":
			if !strings.EqualFold(o.str, "NONE") {
				f.escape = o.str
			}
		case "NULL_IF":
			f.nullIf = o.list
		case "EMPTY_FIELD_AS_NULL":
			f.emptyAsNull = o.bool()
		case "COMPRESSION":
			f.compression = strings.ToUpper(o.str)
		case "PARSE_HEADER":
			f.parseHeader = o.bool()
		case "DATE_FORMAT":
			f.dateFormat = o.str
		case "TIME_FORMAT":
			f.timeFormat = o.str
		case "TIMESTAMP_FORMAT":
			f.timestampFormat = o.str
		case "ESCAPE_UNENCLOSED_FIELD":
			if !strings.EqualFold(o.str, "NONE") {
				return f, unsupported("ESCAPE_UNENCLOSED_FIELD other than NONE")
			}
		case "ERROR_ON_COLUMN_COUNT_MISMATCH":
			if !o.bool() {
				return f, unsupported("ERROR_ON_COLUMN_COUNT_MISMATCH=FALSE")
			}
		case "TRIM_SPACE", "REPLACE_INVALID_CHARACTERS":
			if o.bool() {
				return f, unsupported("%s=TRUE", k)
			}
		case "BINARY_FORMAT":
			if !strings.EqualFold(o.str, "HEX") {
				return f, unsupported("BINARY_FORMAT=%s (only HEX)", o.str)
			}
		case "ENCODING":
			if !strings.EqualFold(strings.ReplaceAll(o.str, "-", ""), "UTF8") {
				return f, unsupported("ENCODING=%s (only UTF8)", o.str)
			}
		case "RECORD_DELIMITER":
			if o.str != "\n" && o.str != "\\n" {
				return f, unsupported("RECORD_DELIMITER other than newline")
			}
		case "BINARY_AS_TEXT", "USE_LOGICAL_TYPE", "USE_VECTORIZED_SCANNER", "SNAPPY_COMPRESSION":
			// Parquet reading options with no effect on the text columns the fake reads.
		case "FORMAT_NAME":
			return f, unsupported("named file formats (FORMAT_NAME)")
		default:
			if fileFormatOptions[k] {
				return f, unsupported("file format option %s", k)
			}
			return f, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nsyntax error: unexpected '" + k + "' (not a file format option)"}
		}
	}
	if f.typ != "CSV" && f.typ != "PARQUET" {
		return f, unsupported("COPY of %s files (only CSV and PARQUET)", f.typ)
	}
	return f, nil
}

// stagedFile is one file in a stage.
type stagedFile struct {
	rel  string // path relative to the stage root, with forward slashes
	path string
}

// listStage returns the files under dir whose stage-relative path starts with sub,
// sorted by name.
func listStage(dir, sub string) ([]stagedFile, error) {
	var files []stagedFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, sub) {
			files = append(files, stagedFile{rel: rel, path: p})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list stage %s: %w", dir, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	return files, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open staged file: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash staged file %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// tableColumn is a target column of COPY.
type tableColumn struct{ name, typ string }

func (ss *session) tableColumns(ctx context.Context, tableSQL string) ([]tableColumn, error) {
	rows, err := ss.conn.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE "+tableSQL+")")
	if err != nil {
		return nil, ss.duckErr(err)
	}
	defer rows.Close()
	var cols []tableColumn
	for rows.Next() {
		var c tableColumn
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, fmt.Errorf("scan column: %w", err)
		}
		c.name = decodeName(c.name)
		cols = append(cols, c)
	}
	return cols, ss.duckErr(rows.Err())
}

// runCopy emulates COPY INTO <table> FROM @stage: each staged file becomes an
// INSERT ... SELECT from read_csv/read_parquet, all in one transaction. Files
// already loaded into the table with the same content are skipped unless
// FORCE=TRUE (Snowflake's load metadata), so a driver that re-stages identical
// file names sees what it would see on Snowflake.
func (ss *session) runCopy(ctx context.Context, sqlText string, toks []token) (*result, error) {
	if len(toks) < 2 || !toks[1].isWord("INTO") {
		return nil, unsupported("COPY other than COPY INTO <table>")
	}
	if len(toks) > 2 && toks[2].kind == tkString || len(toks) > 2 && toks[2].isPunct("@") {
		return nil, unsupported("COPY INTO @stage (unload)")
	}
	parts, i, ok := readQualifiedName(toks, 2)
	if !ok {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nCOPY INTO needs a table name"}
	}
	var colList []string
	if i < len(toks) && toks[i].isPunct("(") {
		end := matchingParen(toks, i)
		for _, t := range toks[i+1 : end] {
			if t.isIdent() {
				colList = append(colList, t.val)
			}
		}
		i = end + 1
	}
	if i >= len(toks) || !toks[i].isWord("FROM") || i+1 >= len(toks) {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nCOPY INTO needs FROM @stage"}
	}
	// positions[k] is the file column ($N) loaded into the k-th target
	// column: the transformation form FROM (SELECT $1, … FROM @stage).
	var positions []int
	stageAt, stageEnd := toks[i+1].pos, len(sqlText)
	optsAt := -1
	if toks[i+1].isPunct("(") {
		end := matchingParen(toks, i+1)
		if end < 0 {
			return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nunbalanced parentheses in COPY"}
		}
		var err error
		positions, stageAt, err = parseCopyTransform(toks[i+2 : end])
		if err != nil {
			return nil, err
		}
		if colList != nil && len(colList) != len(positions) {
			return nil, &sfError{code: "002020", sqlState: "21S01", msg: fmt.Sprintf(
				"SQL compilation error:\nInsert value list does not match column list expecting %d but got %d", len(colList), len(positions))}
		}
		stageEnd, optsAt = toks[end].pos, toks[end].pos+1
	} else if colList != nil {
		// Snowflake documents a column list only with a transformation.
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nsyntax error: a COPY column list " +
			"needs the transformation form COPY INTO t (cols) FROM (SELECT $1, … FROM @stage)"}
	}
	ref, rest, err := parseStageRef(sqlText[stageAt:stageEnd])
	if err != nil {
		return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\n" + err.Error()}
	}
	if optsAt >= 0 {
		if strings.TrimSpace(rest) != "" {
			return nil, unsupported("a COPY transformation other than SELECT $1, $2, … FROM @stage (%s)", strings.TrimSpace(rest))
		}
		rest = sqlText[optsAt:]
	}
	opts, err := parseOptions(rest)
	if err != nil {
		return nil, err
	}
	format, err := parseFileFormat(opts["FILE_FORMAT"])
	if err != nil {
		return nil, err
	}
	matchBy, purge, force := "NONE", false, false
	var pattern *regexp.Regexp
	var only []string
	for k, v := range opts {
		switch k {
		case "FILE_FORMAT":
		case "MATCH_BY_COLUMN_NAME":
			matchBy = strings.ToUpper(v.str)
		case "PURGE":
			purge = v.bool()
		case "FORCE":
			force = v.bool()
		case "PATTERN":
			// Snowflake matches PATTERN against the whole path.
			re, err := regexp.Compile("^(?:" + v.str + ")$")
			if err != nil {
				return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\ninvalid PATTERN: " + err.Error()}
			}
			pattern = re
		case "FILES":
			only = v.list
		case "ON_ERROR":
			if !strings.EqualFold(v.str, "ABORT_STATEMENT") {
				return nil, unsupported("ON_ERROR=%s (only ABORT_STATEMENT)", v.str)
			}
		case "ENFORCE_LENGTH":
			if !v.bool() {
				return nil, unsupported("ENFORCE_LENGTH=FALSE")
			}
		case "TRUNCATECOLUMNS":
			if v.bool() {
				return nil, unsupported("TRUNCATECOLUMNS=TRUE")
			}
		case "LOAD_UNCERTAIN_FILES", "RETURN_FAILED_ONLY":
			// No effect on what a client observes here.
		default:
			if copyOptions[k] {
				return nil, unsupported("COPY option %s", k)
			}
			return nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nsyntax error: unexpected '" + k + "' (not a COPY option)"}
		}
	}
	dir, loadKey, err := ss.stageDirFor(ctx, ref)
	if err != nil {
		return nil, err
	}
	sub := ref.sub
	files, err := listStage(dir, sub)
	if err != nil {
		return nil, err
	}
	if only != nil {
		want := map[string]bool{}
		for _, f := range only {
			want[strings.Trim(sub+"/"+strings.TrimPrefix(f, "/"), "/")] = true
			want[f] = true
		}
		var kept []stagedFile
		for _, f := range files {
			if want[f.rel] {
				kept = append(kept, f)
			}
		}
		files = kept
	}
	if pattern != nil {
		var kept []stagedFile
		for _, f := range files {
			if pattern.MatchString(f.rel) {
				kept = append(kept, f)
			}
		}
		files = kept
	}
	tableSQL, err := ss.prepare(nameTokens(parts))
	if err != nil {
		return nil, err
	}
	if loadKey == "" { // named or user stage: history is per target table
		db, schema, name := ss.qualify(parts)
		loadKey = tableLoadKey(db, schema, name)
	}
	cols, err := ss.tableColumns(ctx, tableSQL)
	if err != nil {
		return nil, err
	}
	type loaded struct {
		file   stagedFile
		sum    string
		rows   int64
		status string
	}
	var todo []loaded
	for _, f := range files {
		sum, err := fileSHA256(f.path)
		if err != nil {
			return nil, err
		}
		ss.srv.mu.Lock()
		prev := ss.srv.loads[loadKey][f.rel]
		ss.srv.mu.Unlock()
		if prev == sum && !force {
			continue // already loaded with identical content
		}
		todo = append(todo, loaded{file: f, sum: sum})
	}
	if len(todo) == 0 {
		return statusResult(stmtCopy, "Copy executed with 0 files processed."), nil
	}
	// Declared VARCHAR(n) and BINARY(n) lengths hold for loaded rows as
	// for inserted ones (ENFORCE_LENGTH=TRUE is all the fake accepts).
	var lengths map[string]int64
	var ldb, lschema, lname string
	if _, temp := ss.lookupTemp(parts); !temp {
		ldb, lschema, lname = ss.qualify(parts)
		lengths = ss.srv.lengthsOf(ldb, lschema, lname)
	}
	finish, err := ss.beginImplicit(ctx)
	if err != nil {
		return nil, err
	}
	for i := range todo {
		q, err := ss.copyFileSQL(ctx, tableSQL, cols, colList, positions, todo[i].file.path, format, matchBy)
		if err == nil {
			var res interface{ RowsAffected() (int64, error) }
			res, err = ss.exec(ctx, q)
			if err == nil {
				todo[i].rows, err = res.RowsAffected()
			}
		}
		if err == nil && len(lengths) > 0 {
			err = ss.duckErr(ss.checkLengths(ctx, ldb, lschema, lname, lengths))
		}
		if err != nil {
			if ferr := finish(false); ferr != nil {
				ss.srv.log.Warn("fakesnowflake: roll back failed COPY", "err", ferr)
			}
			se := toSnowflakeError(err)
			return nil, &sfError{code: se.code, sqlState: se.sqlState,
				msg: fmt.Sprintf("%s\n  File '%s'", se.msg, todo[i].file.rel)}
		}
		todo[i].status = "LOADED"
	}
	if err := finish(true); err != nil {
		return nil, err
	}
	ss.srv.mu.Lock()
	if ss.srv.loads[loadKey] == nil {
		ss.srv.loads[loadKey] = map[string]string{}
	}
	for _, l := range todo {
		ss.srv.loads[loadKey][l.file.rel] = l.sum
	}
	ss.srv.mu.Unlock()
	if purge {
		for _, l := range todo {
			if err := os.Remove(l.file.path); err != nil {
				ss.srv.log.Warn("fakesnowflake: purge staged file", "file", l.file.path, "err", err)
			}
		}
	}
	res := &result{stmtType: stmtCopy}
	for _, n := range []string{"file", "status"} {
		res.columns = append(res.columns, column{Name: n, Type: "text", Length: textLength, Nullable: true})
	}
	for _, n := range []string{"rows_parsed", "rows_loaded", "error_limit", "errors_seen"} {
		res.columns = append(res.columns, column{Name: n, Type: "fixed", Precision: 19, Nullable: true})
	}
	for _, n := range []string{"first_error", "first_error_line", "first_error_character", "first_error_column_name"} {
		t := "text"
		if n == "first_error_line" || n == "first_error_character" {
			t = "fixed"
		}
		res.columns = append(res.columns, column{Name: n, Type: t, Length: textLength, Precision: 19, Nullable: true})
	}
	for _, l := range todo {
		n := itoa(l.rows)
		res.rows = append(res.rows, []*string{strp(l.file.rel), strp(l.status), strp(n), strp(n), strp("1"), strp("0"), nil, nil, nil, nil})
	}
	return res, nil
}

// copyFileSQL builds the INSERT that loads one staged file.
func (ss *session) copyFileSQL(ctx context.Context, tableSQL string, cols []tableColumn, colList []string, positions []int,
	path string, f copyFormat, matchBy string) (string, error) {
	if positions != nil && (matchBy != "NONE" || f.typ != "CSV") {
		return "", unsupported("a COPY transformation with MATCH_BY_COLUMN_NAME or of %s files", f.typ)
	}
	var reader string
	switch f.typ {
	case "PARQUET":
		reader = "read_parquet(" + quoteString(path) + ")"
	case "CSV":
		compression := "auto"
		switch f.compression {
		case "GZIP":
			compression = "gzip"
		case "NONE":
			compression = "none"
		case "AUTO":
		default:
			return "", unsupported("CSV COMPRESSION=%s", f.compression)
		}
		nulls := append([]string{}, f.nullIf...)
		if f.emptyAsNull {
			nulls = append(nulls, "")
		}
		var nl []string
		for _, n := range nulls {
			nl = append(nl, quoteString(n))
		}
		header := matchBy != "NONE"
		if header && !f.parseHeader {
			return "", &sfError{code: "002019", sqlState: "0A000",
				msg: "SQL compilation error:\nMATCH_BY_COLUMN_NAME with CSV needs FILE_FORMAT = (PARSE_HEADER = TRUE)"}
		}
		args := []string{
			"header=" + strconv.FormatBool(header),
			"skip=" + strconv.Itoa(f.skipHeader),
			"delim=" + quoteString(f.delimiter),
			"quote=" + quoteString(f.enclosedBy),
			"all_varchar=true",
			"auto_detect=" + strconv.FormatBool(header),
			"allow_quoted_nulls=false",
			"nullstr=[" + strings.Join(nl, ", ") + "]",
			"compression=" + quoteString(compression),
		}
		if f.escape != "" {
			args = append(args, "escape="+quoteString(f.escape))
		}
		if !header {
			n := len(cols)
			if colList != nil {
				n = len(colList)
			}
			for _, p := range positions {
				n = max(n, p)
			}
			var cs []string
			for i := 0; i < n; i++ {
				cs = append(cs, fmt.Sprintf("'c%d': 'VARCHAR'", i+1))
			}
			args = append(args, "columns={"+strings.Join(cs, ", ")+"}")
		}
		reader = "read_csv(" + quoteString(path) + ", " + strings.Join(args, ", ") + ")"
	}
	colType := map[string]string{}
	for _, c := range cols {
		colType[c.name] = c.typ
	}
	// conv converts a source expression to what the target column needs where
	// DuckDB's implicit cast would differ from Snowflake's loading rules.
	conv := func(expr, srcType, target string) string {
		tt := colType[target]
		switch {
		case tt == "BLOB" && f.typ == "CSV":
			return "unhex(" + expr + ")" // BINARY_FORMAT=HEX, Snowflake's default
		case tt == "JSON" && srcType != "VARCHAR" && srcType != "JSON" && srcType != "":
			return "to_json(" + expr + ")"
		}
		return expr
	}
	if matchBy == "NONE" {
		if f.typ == "PARQUET" {
			if len(cols) == 1 && cols[0].typ == "JSON" {
				return "INSERT INTO " + tableSQL + " SELECT to_json(fakesnowflake_row) FROM " + reader + " AS fakesnowflake_row", nil
			}
			return "", &sfError{code: "002019", sqlState: "0A000", msg: "SQL compilation error:\nPARQUET file format can produce one and only one column of type variant, object, or array. " +
				"Load data into separate columns using the MATCH_BY_COLUMN_NAME copy option or copy with transformation."}
		}
		targets := colList
		if targets == nil {
			for _, c := range cols {
				targets = append(targets, c.name)
			}
		}
		var sel, tgt []string
		for i, t := range targets {
			if f.typ == "CSV" {
				if err := ss.inputFormatError(colType[t], f); err != nil {
					return "", err
				}
			}
			at := i + 1
			if positions != nil {
				at = positions[i]
			}
			sel = append(sel, conv(fmt.Sprintf("c%d", at), "VARCHAR", t))
			tgt = append(tgt, quoteIdent(t))
		}
		return "INSERT INTO " + tableSQL + " (" + strings.Join(tgt, ", ") + ") SELECT " + strings.Join(sel, ", ") + " FROM " + reader, nil
	}
	if matchBy != "CASE_INSENSITIVE" && matchBy != "CASE_SENSITIVE" {
		return "", unsupported("MATCH_BY_COLUMN_NAME=%s", matchBy)
	}
	fileCols, err := ss.describe(ctx, "SELECT * FROM "+reader)
	if err != nil {
		return "", err
	}
	var sel, tgt []string
	for _, c := range cols {
		for _, fc := range fileCols {
			if fc.name == c.name || matchBy == "CASE_INSENSITIVE" && strings.EqualFold(fc.name, c.name) {
				sel = append(sel, conv(quoteRaw(fc.name), fc.typ, c.name))
				tgt = append(tgt, quoteIdent(c.name))
				break
			}
		}
	}
	if len(sel) == 0 {
		return "", &sfError{code: "100166", sqlState: "22000", msg: "No column of the file matches a column of the table (MATCH_BY_COLUMN_NAME=" + matchBy + ")"}
	}
	return "INSERT INTO " + tableSQL + " (" + strings.Join(tgt, ", ") + ") SELECT " + strings.Join(sel, ", ") + " FROM " + reader, nil
}

// describe returns the column names and types of a query without running it.
func (ss *session) describe(ctx context.Context, q string) ([]tableColumn, error) {
	rows, err := ss.conn.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE "+q+")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []tableColumn
	for rows.Next() {
		var c tableColumn
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, fmt.Errorf("scan described column: %w", err)
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// --- LIST / REMOVE -------------------------------------------------------------------

func (ss *session) stageFilesFor(ctx context.Context, sqlText string, toks []token) (stageRef, []stagedFile, error) {
	if len(toks) < 2 {
		return stageRef{}, nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nmissing stage"}
	}
	ref, rest, err := parseStageRef(sqlText[toks[1].pos:])
	if err != nil {
		return stageRef{}, nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\n" + err.Error()}
	}
	opts, err := parseOptions(rest)
	if err != nil {
		return stageRef{}, nil, err
	}
	dir, _, err := ss.stageDirFor(ctx, ref)
	if err != nil {
		return stageRef{}, nil, err
	}
	files, err := listStage(dir, ref.sub)
	if err != nil {
		return stageRef{}, nil, err
	}
	if p, ok := opts["PATTERN"]; ok {
		re, err := regexp.Compile("^(?:" + p.str + ")$")
		if err != nil {
			return stageRef{}, nil, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\ninvalid PATTERN: " + err.Error()}
		}
		var kept []stagedFile
		for _, f := range files {
			if re.MatchString(f.rel) {
				kept = append(kept, f)
			}
		}
		files = kept
	}
	return ref, files, nil
}

func (ss *session) runList(ctx context.Context, sqlText string, toks []token) (*result, error) {
	_, files, err := ss.stageFilesFor(ctx, sqlText, toks)
	if err != nil {
		return nil, err
	}
	res := &result{stmtType: stmtList, columns: []column{
		{Name: "name", Type: "text", Length: textLength, Nullable: true},
		{Name: "size", Type: "fixed", Precision: 19, Nullable: true},
		{Name: "md5", Type: "text", Length: textLength, Nullable: true},
		{Name: "last_modified", Type: "text", Length: textLength, Nullable: true},
	}}
	for _, f := range files {
		fi, err := os.Stat(f.path)
		if err != nil {
			return nil, fmt.Errorf("stat staged file: %w", err)
		}
		data, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("read staged file: %w", err)
		}
		sum := md5.Sum(data) //nolint:gosec // reported, not trusted
		res.rows = append(res.rows, []*string{strp(f.rel), strp(itoa(fi.Size())), strp(hex.EncodeToString(sum[:])),
			strp(fi.ModTime().UTC().Format("Mon, 2 Jan 2006 15:04:05 GMT"))})
	}
	return res, nil
}

func (ss *session) runRemove(ctx context.Context, sqlText string, toks []token) (*result, error) {
	_, files, err := ss.stageFilesFor(ctx, sqlText, toks)
	if err != nil {
		return nil, err
	}
	res := &result{stmtType: stmtRemove, columns: []column{
		{Name: "name", Type: "text", Length: textLength, Nullable: true},
		{Name: "result", Type: "text", Length: textLength, Nullable: true},
	}}
	for _, f := range files {
		if err := os.Remove(f.path); err != nil {
			return nil, fmt.Errorf("remove staged file %s: %w", f.rel, err)
		}
		res.rows = append(res.rows, []*string{strp(f.rel), strp("removed")})
	}
	return res, nil
}

// copyOptions are the copy options Snowflake documents for COPY INTO
// <table>; one the fake does not implement fails with 002040, a word that
// is none of them with a syntax error (001003), as in Snowflake.
var copyOptions = map[string]bool{
	"FILE_FORMAT": true, "FILES": true, "PATTERN": true, "ON_ERROR": true, "SIZE_LIMIT": true, "PURGE": true,
	"RETURN_FAILED_ONLY": true, "MATCH_BY_COLUMN_NAME": true, "INCLUDE_METADATA": true, "ENFORCE_LENGTH": true,
	"TRUNCATECOLUMNS": true, "FORCE": true, "LOAD_UNCERTAIN_FILES": true, "FILE_PROCESSOR": true, "LOAD_MODE": true,
	"VALIDATION_MODE": true,
}

// parseCopyTransform reads the inside of a COPY transformation,
// SELECT $1, $2, … FROM @stage: the file column of each selected item and
// where in the statement the stage reference starts. Any other expression
// fails with 002040.
func parseCopyTransform(toks []token) ([]int, int, error) {
	if len(toks) == 0 || !toks[0].isWord("SELECT") {
		return nil, 0, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nsyntax error: a COPY transformation starts with SELECT"}
	}
	from := -1
	for j, t := range toks {
		if t.isWord("FROM") {
			from = j
			break
		}
	}
	if from < 0 || from+1 >= len(toks) {
		return nil, 0, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\nsyntax error: a COPY transformation needs FROM @stage"}
	}
	var positions []int
	for _, item := range splitTopLevel(toks[1:from]) {
		if len(item) != 2 || !item[0].isPunct("$") || item[1].kind != tkNumber || item[1].sp {
			return nil, 0, unsupported("COPY transformation item %q (only $N)", render(item))
		}
		n, err := strconv.Atoi(item[1].text)
		if err != nil || n < 1 {
			return nil, 0, &sfError{code: "001003", sqlState: "42000", msg: "SQL compilation error:\ninvalid file column $" + item[1].text}
		}
		positions = append(positions, n)
	}
	return positions, toks[from+1].pos, nil
}

// fileFormatOptions are file format options Snowflake documents for CSV
// and Parquet that the fake does not implement (002040); any other word
// is a syntax error (001003).
var fileFormatOptions = map[string]bool{
	"FILE_EXTENSION": true, "SKIP_BLANK_LINES": true, "DATE_FORMAT": true, "TIME_FORMAT": true, "TIMESTAMP_FORMAT": true,
	"SKIP_BYTE_ORDER_MARK": true, "EMPTY_FIELD_AS_NULL": true, "MULTI_LINE": true, "NULL_IF": true,
}
