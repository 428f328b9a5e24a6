#!/usr/bin/env bash
# The demo: a local PostgreSQL with wal_level=logical, `rosetta dev` (API,
# capture and sink in one process with embedded NATS), a pipeline created
# through the REST API from one source to two destinations (a DuckDB file
# and a PostgreSQL database), and rows written to the source arriving at
# both while you watch. Ctrl-C stops everything.
#
#   DEMO_SECONDS   how long to write changes (default 30; 0 = until Ctrl-C)
#   DEMO_PG_PORT   port of the demo PostgreSQL (default 55432)
#   ROSETTA_HTTP_ADDR  API address (default 127.0.0.1:8080)
#   ROSETTA_API_TOKEN  admin API token; unset, rosetta dev generates one and
#                      stores it in .rosetta/demo/data/api-token
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT="$PWD/.rosetta/demo"
PGPORT="${DEMO_PG_PORT:-55432}"
API_ADDR="${ROSETTA_HTTP_ADDR:-127.0.0.1:8080}"
API="http://$API_ADDR/api/v1"
SECONDS_TO_RUN="${DEMO_SECONDS:-30}"
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
mkdir -p "$ROOT"

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
psql_db() { PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres -d "$1" "${@:2}"; }
step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }

cleanup() {
  step "stopping"
  [ -n "${ROSETTA_PID:-}" ] && kill -TERM "$ROSETTA_PID" 2>/dev/null && wait "$ROSETTA_PID" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$ROOT/pg" -m fast -w stop >/dev/null 2>&1 || true
  echo "logs: $ROOT/rosetta.log  (data stays in $ROOT; 'make clean' removes it)"
}
trap cleanup EXIT

step "starting a local PostgreSQL with wal_level=logical on port $PGPORT"
if [ ! -f "$ROOT/pg/PG_VERSION" ]; then
  mkdir -p "$ROOT/pg"
  [ "$(id -u)" -eq 0 ] && chown -R postgres "$ROOT"
  as_pg "$PGBIN/initdb" -D "$ROOT/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  cat >>"$ROOT/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
unix_socket_directories = '$ROOT'
CONF
fi
[ "$(id -u)" -eq 0 ] && chown -R postgres "$ROOT"
as_pg "$PGBIN/pg_ctl" -D "$ROOT/pg" -l "$ROOT/pg.log" -w start >/dev/null
for db in rosetta shop warehouse; do
  psql_db postgres -tc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 || psql_db postgres -c "CREATE DATABASE $db"
done
psql_db shop <<'SQL'
CREATE TABLE IF NOT EXISTS customers (id bigint PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL, amount numeric(12,2) NOT NULL, status text NOT NULL, items jsonb, updated_at timestamptz NOT NULL DEFAULT now());
SQL

step "starting rosetta dev (api + capture + sink, embedded NATS)"
export ROSETTA_CONFIG_DSN="postgres://postgres@127.0.0.1:$PGPORT/rosetta?sslmode=disable"
export ROSETTA_HTTP_ADDR="$API_ADDR"
export ROSETTA_DATA_DIR="$ROOT/data"
export ROSETTA_RECONCILE_INTERVAL="${ROSETTA_RECONCILE_INTERVAL:-5s}"
./bin/rosetta dev >"$ROOT/rosetta.log" 2>&1 &
ROSETTA_PID=$!
for i in $(seq 1 120); do
  curl -fsS "$API/health" >/dev/null 2>&1 && break
  kill -0 "$ROSETTA_PID" 2>/dev/null || { tail -20 "$ROOT/rosetta.log"; echo "rosetta dev exited"; exit 1; }
  sleep 0.5
done
# rosetta dev stored its admin token before the API answered.
TOKEN="${ROSETTA_API_TOKEN:-$(cat "$ROSETTA_DATA_DIR/api-token")}"
echo "API token: ${ROSETTA_API_TOKEN:+from ROSETTA_API_TOKEN}${ROSETTA_API_TOKEN:-$ROSETTA_DATA_DIR/api-token}"
curl -fsS -H "Authorization: Bearer $TOKEN" "$API/ready"; echo
printf '\n\033[1mconsole: http://%s/\033[0m  sign in with the API token %s\n' "$API_ADDR" "$TOKEN"

api() { # method path [json]
  local out code
  out=$(curl -sS -X "$1" "$API$2" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' ${3:+-d "$3"} -w '\n%{http_code}')
  code=${out##*$'\n'}; out=${out%$'\n'*}
  if [ "$code" -ge 400 ]; then echo "$1 $2 -> $code $out" >&2; return 1; fi
  echo "$out"
}
id_of() { sed -n 's/.*"id":\([0-9]*\).*/\1/p' | head -1; }
find_id() { # path name
  { api GET "$1?limit=500" | tr "{" "\n" | grep "\"name\":\"$2\"" | id_of; } || true
}

step "creating the source, the destination and the pipeline through the REST API"
SRC=$(find_id /sources shop)
[ -n "$SRC" ] || SRC=$(api POST /sources "{\"name\":\"shop\",\"host\":\"127.0.0.1\",\"port\":$PGPORT,\"database\":\"shop\",\"user\":\"postgres\",\"password\":\"demo-password\",\"sslmode\":\"disable\"}" | id_of)
# Inside the data dir: the API keeps DuckDB files there (ROSETTA_DUCKDB_ROOTS).
DUCK="$ROSETTA_DATA_DIR/analytics.duckdb"
DDB=$(find_id /destinations analytics)
[ -n "$DDB" ] || DDB=$(api POST /destinations "{\"name\":\"analytics\",\"type\":\"duckdb\",\"config\":{\"path\":\"$DUCK\",\"release_after\":\"200ms\",\"max_hold\":\"2s\"}}" | id_of)
DST=$(find_id /destinations warehouse)
[ -n "$DST" ] || DST=$(api POST /destinations "{\"name\":\"warehouse\",\"type\":\"postgres\",\"config\":{\"host\":\"127.0.0.1\",\"port\":$PGPORT,\"database\":\"warehouse\",\"user\":\"postgres\",\"password\":\"demo-password\",\"schema\":\"public\",\"sslmode\":\"disable\"}}" | id_of)
PIPE=$(find_id /pipelines shop-to-warehouse)
[ -n "$PIPE" ] || PIPE=$(api POST /pipelines "{\"name\":\"shop-to-warehouse\",\"source_id\":$SRC,\"destination_ids\":[$DDB,$DST],\"tables\":[\"public.customers\",\"public.orders\"]}" | id_of)
echo "source=$SRC destinations=$DDB (duckdb $DUCK), $DST (postgres warehouse) pipeline=$PIPE"
api POST "/pipelines/$PIPE/start" >/dev/null
echo "pipeline $PIPE started"

COUNT_SQL="SELECT CAST((SELECT count(*) FROM customers) AS VARCHAR)||' customers, '||CAST((SELECT count(*) FROM orders) AS VARCHAR)||' orders'"
SUM_SQL="SELECT md5(coalesce(string_agg(CAST(id AS VARCHAR)||'|'||name||'|'||coalesce(email,''), ',' ORDER BY id),'')) FROM customers"
count() { psql_db "$1" -tAc "$COUNT_SQL" 2>/dev/null || echo "(no tables yet)"; }
checksum() { psql_db "$1" -tAc "$SUM_SQL" 2>/dev/null; }
# DuckDB allows one process per file while it writes; duckquery asks the
# Rosetta process holding the file to run the query (docs/duckdb.md).
duck_count() { ./bin/duckquery -wait "${1:-1s}" "$DUCK" "$COUNT_SQL" 2>/dev/null || echo "(busy or no tables yet)"; }
duck_checksum() { ./bin/duckquery -wait 20s "$DUCK" "$SUM_SQL" 2>/dev/null; }

step "writing changes to the source (inserts, updates, deletes) — watch them arrive"
start=$(date +%s); n=0
while :; do
  n=$((n+1))
  psql_db shop >/dev/null <<SQL
BEGIN;
INSERT INTO customers (id, name, email) VALUES ($n, 'customer $n', 'c$n@example.com') ON CONFLICT (id) DO NOTHING;
INSERT INTO orders (customer_id, amount, status, items) SELECT $n, round((random()*500)::numeric, 2), 'new', '{"sku": "A-$n", "qty": 2}' FROM generate_series(1, 3);
UPDATE orders SET status = 'paid', updated_at = now() WHERE customer_id = $((n-1)) AND status = 'new';
DELETE FROM orders WHERE id IN (SELECT id FROM orders WHERE customer_id = $((n-2)) ORDER BY id LIMIT 1);
UPDATE customers SET email = 'vip$n@example.com' WHERE id = $((n-3));
COMMIT;
SQL
  printf '  t=%3ss  source: %-26s duckdb: %-26s postgres: %s\n' "$(( $(date +%s) - start ))" "$(count shop)" "$(duck_count)" "$(count warehouse)"
  [ "$SECONDS_TO_RUN" != 0 ] && [ $(( $(date +%s) - start )) -ge "$SECONDS_TO_RUN" ] && break
  sleep 1
done

step "waiting for the destinations to catch up"
same() { [ "$(checksum shop)" = "$(checksum warehouse)" ] && [ "$(checksum shop)" = "$(duck_checksum)" ]; }
for i in $(seq 1 60); do same && break; sleep 1; done
echo "source:   $(count shop)   checksum $(checksum shop)"
echo "duckdb:   $(duck_count 20s)   checksum $(duck_checksum)"
echo "postgres: $(count warehouse)   checksum $(checksum warehouse)"
# One line per destination: its rows, health and lag as the API reports them.
summary() {
  api GET "/pipelines/$PIPE" | node -e '
    const [duck, pg] = process.argv.slice(1);
    const p = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const rows = { duckdb: duck, postgres: pg };
    const lag = (s) => (s === null ? "–" : `${s.toFixed(1)} s`);
    const table = [["destination", "rows", "health", "lag", "lag bytes", "pending", "dead-lettered"]];
    for (const d of p.destinations) {
      table.push([`${d.name} (${d.type})`, rows[d.type] ?? "–", d.health + (d.reason ? `: ${d.reason}` : ""), lag(d.lag_seconds),
        d.lag_bytes === null ? "–" : String(d.lag_bytes), d.pending === null ? "–" : String(d.pending), String(d.dlq.depth)]);
    }
    const w = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
    for (const r of table) console.log("  " + r.map((c, i) => c.padEnd(w[i])).join("  "));
  ' "$(duck_count 20s)" "$(count warehouse)"
}
step "pipeline $PIPE, per destination"
summary
printf '\nconsole: http://%s/  (API token: %s)\n' "$API_ADDR" "$TOKEN"
if same; then
  printf '\n\033[1;32mboth destinations equal the source\033[0m\n'
else
  printf '\n\033[1;31ma destination differs from the source — see %s\033[0m\n' "$ROOT/rosetta.log"; exit 1
fi
