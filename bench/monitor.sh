#!/usr/bin/env bash
# The monitor benchmark: what a `pgkeel monitor` run costs the database, whether its query
# count grows with the number of tables, and how /metrics of `pgkeel serve` holds up under a
# steady 200 requests/s against /healthz (no database, no cache) as the baseline.
#
#   bench/monitor.sh
#
# Environment:
#   PGKEEL_BENCH_URL       admin URL (default postgresql://postgres@127.0.0.1:5432/postgres);
#                           a fresh database is created and dropped through it
#   PGKEEL_BENCH_REPS      monitor runs per measurement; the median is reported (default 7)
#   PGKEEL_BENCH_TABLES    extra tables for the query-count check (default 300)
#   PGKEEL_BENCH_SECONDS   length of each wrk run (default 15)
#   PGKEEL_BENCH_INTERVAL  serve's collection interval in seconds (default 5)
#   PGKEEL_BENCH_IDLE      idle connections held during the third wrk run (default 300)
#   PGKEEL_BIN             binary (default target/release/pgkeel, built when missing)
#
# Needs psql, createdb, dropdb, python3, wrk (Debian package wrk). Prints a table and writes
# bench/results/monitor-<date>.json. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
URL=${PGKEEL_BENCH_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
REPS=${PGKEEL_BENCH_REPS:-7}
TABLES=${PGKEEL_BENCH_TABLES:-300}
SECS=${PGKEEL_BENCH_SECONDS:-15}
INTERVAL=${PGKEEL_BENCH_INTERVAL:-5}
BIN=${PGKEEL_BIN:-$ROOT/target/release/pgkeel}
EXAMPLE="$ROOT/examples/cfi-handbook/drizzle"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }
for tool in python3 psql createdb dropdb wrk curl; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install postgresql-client python3 wrk curl)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgkeel-bench-monitor.XXXXXX")
DB="pgkeel_bench_monitor_$$"
SERVE_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $SERVE_PID ]] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
    dropdb --if-exists --force --maintenance-db="$URL" "$DB" >/dev/null 2>&1 ||
        log "could not drop database $DB; drop it by hand"
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql -X -q -d "$URL" -Atc 'SELECT 1' >/dev/null ||
    die "PostgreSQL does not answer at $URL (set PGKEEL_BENCH_URL)"
if [[ ! -x $BIN ]]; then
    log "building the release binary (cargo build --release -p pgkeel-cli)"
    (cd "$ROOT" && cargo build --release -p pgkeel-cli) || die "build failed"
fi

DB_URL=$(python3 - "$URL" "$DB" <<'PY'
import sys
from urllib.parse import urlsplit, urlunsplit
u = urlsplit(sys.argv[1])
print(urlunsplit((u.scheme, u.netloc, "/" + sys.argv[2], u.query, u.fragment)))
PY
)
createdb --maintenance-db="$URL" "$DB"
export DATABASE_URL="$DB_URL"
cd "$TMP"
"$BIN" migrate --migrations "$EXAMPLE" >/dev/null

# --- 1. database time and query count of a full monitor run -----------------------------------
monitor_runs() { # LABEL -> one JSON line per run in $TMP/LABEL.jsonl
    "$BIN" monitor --no-report --format json --migrations "$EXAMPLE" >/dev/null || true # warm-up (creates the history table)
    : >"$TMP/$1.jsonl"
    for _ in $(seq "$REPS"); do
        "$BIN" monitor --no-report --format json --migrations "$EXAMPLE" >"$TMP/run.json" || true
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({"db_ms": d["cost"]["db_time_ms"], "queries": d["cost"]["queries"], "p50_ms": d["health"]["latency"]["p50_ms"]}))' "$TMP/run.json" >>"$TMP/$1.jsonl"
    done
}
log "monitor on the example ($REPS runs)"
monitor_runs example
log "adding $TABLES tables with an index each"
python3 -c "import sys; [print(f'CREATE TABLE bench_t{i} (id int PRIMARY KEY, v text); CREATE INDEX ON bench_t{i} (v); INSERT INTO bench_t{i} SELECT g, md5(g::text) FROM generate_series(1, 50) g;') for i in range(int(sys.argv[1]))]" "$TABLES" |
    psql -X -q -d "$DB_URL" -v ON_ERROR_STOP=1 >/dev/null
log "monitor with $TABLES more tables ($REPS runs)"
monitor_runs many

# --- 2. /metrics under 200 requests/s ----------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --listen "127.0.0.1:$PORT" --interval "$INTERVAL" --migrations "$EXAMPLE" 2>"$TMP/serve.log" &
SERVE_PID=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
# Two connections, each waiting 10 ms between requests: about 200 requests/s.
cat >"$TMP/rate.lua" <<'LUA'
function delay() return 10 end
LUA
xacts() { psql -X -d "$URL" -Atc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$DB'"; }
wrk_run() { # PATH LABEL
    wrk -t1 -c2 -d"${SECS}s" --latency -s "$TMP/rate.lua" "http://127.0.0.1:$PORT$1" >"$TMP/$2.wrk"
}
log "wrk: /healthz for ${SECS}s (baseline)"
wrk_run /healthz healthz
curl -fs "http://127.0.0.1:$PORT/metrics" >/dev/null   # first collection outside the window
sleep 1
before_x=$(xacts)
before_c=$(curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^pgkeel_collections_total/ {print $2}')
log "wrk: /metrics for ${SECS}s (collection interval ${INTERVAL}s)"
wrk_run /metrics metrics
after_c=$(curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^pgkeel_collections_total/ {print $2}')
# The same with IDLE connections held open that never send a request (reopened when serve
# closes them, as a misbehaving client or a port scan would): they must not slow the scrape.
IDLE=${PGKEEL_BENCH_IDLE:-300}
python3 - "$PORT" "$IDLE" "$((SECS + 3))" >"$TMP/idle.log" 2>&1 <<'PY' &
import select, socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def open_one():
    s = socket.create_connection(("127.0.0.1", port)); s.setblocking(False); return s
socks, reopened, end = [open_one() for _ in range(n)], 0, time.time() + secs
while time.time() < end:
    r, _, _ = select.select(socks, [], [], 0.2)
    for s in r:
        try:
            closed = s.recv(1) == b""
        except OSError:
            closed = True
        if closed:
            socks.remove(s); s.close(); socks.append(open_one()); reopened += 1
print(f"held {n} idle connections for {secs:.0f}s; serve closed and the client reopened {reopened}")
PY
IDLE_PID=$!
sleep 1
log "wrk: /metrics for ${SECS}s with $IDLE idle connections held"
wrk_run /metrics metrics_idle
wait "$IDLE_PID" || true
log "$(cat "$TMP/idle.log")"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=""
sleep 1   # the closed session's statistics reach pg_stat_database
after_x=$(xacts)

mkdir -p "$ROOT/bench/results"
OUT="$ROOT/bench/results/monitor-$(date -u +%Y-%m-%dT%H%M%S).json"
python3 - "$TMP" "$OUT" "$TABLES" "$SECS" "$INTERVAL" "$before_x" "$after_x" "$before_c" "$after_c" <<'PY'
import json, re, statistics, sys
tmp, out, tables, secs, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
bx, ax, bc, ac = (float(x) for x in sys.argv[6:10])

def runs(label):
    rows = [json.loads(l) for l in open(f"{tmp}/{label}.jsonl")]
    return {
        "db_ms_median": statistics.median(r["db_ms"] for r in rows),
        "db_ms_max": max(r["db_ms"] for r in rows),
        "queries": sorted({r["queries"] for r in rows}),
        "roundtrip_p50_ms": statistics.median(r["p50_ms"] for r in rows),
    }

def unit_ms(v, u):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]

def wrk(label):
    t = open(f"{tmp}/{label}.wrk").read()
    lat = {p: unit_ms(v, u) for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", t, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    reqs = int(re.search(r"(\d+) requests in", t).group(1))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    return {"rps": rps, "requests": reqs, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
            "non_2xx": int(errs.group(1)) if errs else 0}

ex, many = runs("example"), runs("many")
hz, mx, mi = wrk("healthz"), wrk("metrics"), wrk("metrics_idle")
collections = ac - bc
per_collection = ex["queries"][0]
res = {
    "monitor_example": ex,
    f"monitor_plus_{tables}_tables": many,
    "query_count_constant": ex["queries"] == many["queries"],
    "wrk_healthz": hz,
    "wrk_metrics": mx,
    "wrk_metrics_with_idle_connections": mi,
    "idle_connections": open(f"{tmp}/idle.log").read().strip(),
    "window_seconds": secs,
    "interval_seconds": interval,
    "collections_in_window": collections,
    "collections_allowed": secs // interval + 1,
    "db_transactions_in_window": ax - bx,
    "db_transactions_if_uncached": mx["requests"] * per_collection,
}
json.dump(res, open(out, "w"), indent=2)
print()
print(f"| monitor run (median of runs)          | example            | +{tables} tables |")
print(f"|---|---|---|")
print(f"| database time                         | {ex['db_ms_median']:.1f} ms (goal < 50) | {many['db_ms_median']:.1f} ms |")
print(f"| queries                               | {ex['queries']}    | {many['queries']} |")
print(f"| SELECT 1 round trip (baseline)        | {ex['roundtrip_p50_ms']:.2f} ms | {many['roundtrip_p50_ms']:.2f} ms |")
print(f"| database time / round trip            | {ex['db_ms_median']/ex['roundtrip_p50_ms']:.0f}x | {many['db_ms_median']/many['roundtrip_p50_ms']:.0f}x |")
print()
print(f"| wrk, {secs}s, 2 connections, 10 ms apart | /healthz (baseline) | /metrics | /metrics, idle connections held |")
print(f"|---|---|---|---|")
print(f"| requests/s                            | {hz['rps']:.0f} | {mx['rps']:.0f} | {mi['rps']:.0f} |")
print(f"| latency p50                           | {hz['p50_ms']:.3f} ms | {mx['p50_ms']:.3f} ms | {mi['p50_ms']:.3f} ms |")
print(f"| latency p99                           | {hz['p99_ms']:.3f} ms | {mx['p99_ms']:.3f} ms (goal < 5) | {mi['p99_ms']:.3f} ms |")
print(f"| p99 ratio to /healthz                 | 1.00 | {mx['p99_ms']/hz['p99_ms']:.2f} | {mi['p99_ms']/hz['p99_ms']:.2f} |")
print(f"| non-2xx                               | {hz['non_2xx']} | {mx['non_2xx']} | {mi['non_2xx']} |")
print(open(f"{tmp}/idle.log").read().strip())
print()
print(f"collections during the /metrics window: {collections:.0f} (at most {secs // interval + 1} allowed at one per {interval}s)")
print(f"database transactions in that window: {ax - bx:.0f} (uncached, {mx['requests']} scrapes x {per_collection} queries = {mx['requests'] * per_collection})")
print(f"results: {out}")
PY
