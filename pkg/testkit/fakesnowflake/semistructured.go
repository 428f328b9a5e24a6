package fakesnowflake

// Snowflake's semi-structured functions that DuckDB has no same-named
// equivalent for, as DuckDB macros created on every connection (VARIANT,
// OBJECT and ARRAY are DuckDB JSON here). Each follows Snowflake's
// documented semantics, not DuckDB's nearest function:
//
//   - GET(<object>, <key>) is the key's value, GET(<array>, <index>) the
//     element (0-based); NULL when absent or for any other input. Keys are
//     matched exactly: DuckDB's json_extract would read a key starting with
//     $ or / as a path.
//   - OBJECT_INSERT(<object>, <key>, <value> [, <updateFlag>]) returns the
//     object with the pair added; a SQL NULL key or value leaves the pair
//     out (a JSON null is inserted); an existing key is an error unless
//     updateFlag is TRUE, which replaces its value.
//   - OBJECT_KEYS(<object>) is the ARRAY of its keys.
//   - ARRAY_SIZE(<array>) is its number of elements; NULL for anything that
//     is not an array.
//
// A macro, unlike a rewrite, keeps the argument expressions as they are:
// the statement text stays Snowflake's. DuckDB expands a macro by
// substituting each argument wherever its parameter appears, so the
// bodies name each argument once and reuse it through a lambda's
// parameter: nested calls (OBJECT_INSERT(OBJECT_INSERT(…), …)) then grow
// linearly, not exponentially.
var semiStructuredMacros = []string{
	`CREATE OR REPLACE TEMP MACRO GET(v, k) AS list_transform([{'v': CAST(v AS JSON), 'k': k}], x -> CASE json_type(x.v)
		WHEN 'OBJECT' THEN CAST(x.v AS MAP(VARCHAR, JSON))[CAST(x.k AS VARCHAR)]
		WHEN 'ARRAY' THEN json_extract(x.v, TRY_CAST(x.k AS BIGINT)) END)[1]`,
	`CREATE OR REPLACE TEMP MACRO OBJECT_INSERT(o, k, v) AS ` + objectInsertBody("FALSE") +
		`, (o, k, v, f) AS ` + objectInsertBody("f"),
	`CREATE OR REPLACE TEMP MACRO OBJECT_KEYS(o) AS CAST(to_json(json_keys(CAST(o AS JSON))) AS JSON)`,
	`CREATE OR REPLACE TEMP MACRO ARRAY_SIZE(a) AS list_transform([CAST(a AS JSON)],
		x -> CASE WHEN json_type(x) = 'ARRAY' THEN json_array_length(x) END)[1]`,
}

// objectInsertBody is OBJECT_INSERT with update flag expression f. A SQL
// NULL value stays NULL through to_json; a JSON null does not.
func objectInsertBody(f string) string {
	return `list_transform([{'o': CAST(o AS JSON), 'k': CAST(k AS VARCHAR), 'v': to_json(v), 'f': ` + f + `}], x -> CASE
		WHEN x.o IS NULL THEN NULL
		WHEN x.k IS NULL OR x.v IS NULL THEN x.o
		WHEN NOT x.f AND list_contains(json_keys(x.o), x.k) THEN error('Duplicate field key ''' || x.k || '''')
		ELSE CAST(to_json(map_concat(CAST(x.o AS MAP(VARCHAR, JSON)), MAP([x.k], [x.v]))) AS JSON) END)[1]`
}
