#!/usr/bin/env bash
# The schema benchmark: `pgkeel schema dump` against `pg_dump --schema-only` on the same
# database, and `pgkeel schema diff` of two snapshot files, in one run.
#
#   bench/schema.sh
#
# Environment:
#   PGKEEL_BENCH_URL     admin URL (default postgresql://postgres@127.0.0.1:5432/postgres);
#                         two fresh databases are created and dropped through it
#   PGKEEL_BENCH_TABLES  tables (default 2000; 10 columns, 2 indexes, 1 FK each)
#   PGKEEL_BENCH_VIEWS   views (default 200)
#   PGKEEL_BENCH_REPS    repetitions; the median is reported (default 5)
#   PGKEEL_BIN           binary (default target/release/pgkeel, built when missing)
#
# Prints a table and writes bench/results/schema-<date>.json. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
URL=${PGKEEL_BENCH_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
TABLES=${PGKEEL_BENCH_TABLES:-2000}
VIEWS=${PGKEEL_BENCH_VIEWS:-200}
REPS=${PGKEEL_BENCH_REPS:-5}
BIN=${PGKEEL_BIN:-$ROOT/target/release/pgkeel}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }
for tool in python3 psql createdb dropdb pg_dump; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install postgresql-client python3)"
done
if [[ ! -x $BIN ]]; then
    log "building $BIN"
    (cd "$ROOT" && cargo build --release -p pgkeel-cli)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgkeel-bench-schema.XXXXXX")
A="pgkeel_bench_schema_$$_a"
B="pgkeel_bench_schema_$$_b"
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for db in "$A" "$B"; do
        dropdb --if-exists --force --maintenance-db="$URL" "$db" >/dev/null 2>&1 ||
            log "could not drop database $db; drop it by hand"
    done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

db_url() { python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$URL" "$1"; }

# --- the schema ---------------------------------------------------------------------------------
# The generator lives in bench_helper.py so bench/validate.sh builds the same schema.
python3 "$ROOT/bench/bench_helper.py" schema-sql "$TABLES" "$VIEWS" 0 "$TMP/a.sql"
python3 "$ROOT/bench/bench_helper.py" schema-sql "$TABLES" "$VIEWS" 1 "$TMP/b.sql"
log "creating $TABLES tables and $VIEWS views in two databases"
for db in "$A" "$B"; do
    dropdb --if-exists --force --maintenance-db="$URL" "$db" >/dev/null 2>&1 || true
    createdb --maintenance-db="$URL" "$db"
done
psql -X -q -v ON_ERROR_STOP=1 -d "$(db_url "$A")" -f "$TMP/a.sql" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$(db_url "$B")" -f "$TMP/b.sql" >/dev/null
psql -X -q -d "$(db_url "$A")" -c "VACUUM ANALYZE pg_catalog.pg_class" >/dev/null 2>&1 || true

# --- measurements ------------------------------------------------------------------------------
AURL=$(db_url "$A"); BURL=$(db_url "$B")
"$BIN" --database-url "$BURL" schema dump --format json -o "$TMP/b.json"
python3 - "$REPS" "$TMP" "$BIN" "$AURL" "$ROOT/bench/results" "$TABLES" "$VIEWS" <<'PY'
import json, os, statistics, subprocess, sys, time, datetime
reps, tmp, binary, aurl, results, tables, views = sys.argv[1:8]
reps = int(reps)
def timed(cmd, out):
    best = []
    for _ in range(reps):
        with open(out, "wb") as f:
            t = time.perf_counter()
            rc = subprocess.call(cmd, stdout=f)
            best.append(time.perf_counter() - t)
        if rc not in (0, 1):
            sys.exit(f"{cmd[0]} failed with {rc}")
    return statistics.median(best)
# Interleave so both see the same cache state: one warm-up each first.
subprocess.call(["pg_dump", "--schema-only", "-d", aurl], stdout=subprocess.DEVNULL)
pg = timed(["pg_dump", "--schema-only", "-d", aurl], f"{tmp}/pg_dump.sql")
dump = timed([binary, "--database-url", aurl, "schema", "dump", "--format", "json"], f"{tmp}/a.json")
dump_sql = timed([binary, "--database-url", aurl, "schema", "dump", "--format", "sql"], f"{tmp}/a.sql.out")
diff = timed([binary, "schema", "diff", "--from", f"{tmp}/a.json", "--to", f"{tmp}/b.json", "--format", "json"], f"{tmp}/diff.json")
same = timed([binary, "schema", "diff", "--from", f"{tmp}/a.json", "--to", f"{tmp}/a.json", "--format", "json"], f"{tmp}/same.json")
changes = len(json.load(open(f"{tmp}/diff.json"))["changes"])
a = json.load(open(f"{tmp}/a.json"))
assert len(a["tables"]) == int(tables) and len(a["views"]) == int(views), "snapshot is incomplete"
rows = [
    ("pg_dump --schema-only (baseline)", pg, ""),
    ("pgkeel schema dump --format json", dump, f"{dump/pg:.2f}x pg_dump"),
    ("pgkeel schema dump --format sql", dump_sql, f"{dump_sql/pg:.2f}x pg_dump"),
    (f"pgkeel schema diff (2 files, {changes} changes)", diff, ""),
    ("pgkeel schema diff (identical files)", same, ""),
]
print(f"{tables} tables (10 columns, 2 indexes, 1 FK each), {views} views; median of {reps}")
for name, secs, note in rows:
    print(f"  {name:<48} {secs*1000:8.0f} ms  {note}")
print(f"goals: dump <= 1000 ms and <= 2x pg_dump; diff < 200 ms")
os.makedirs(results, exist_ok=True)
stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
json.dump({"tables": int(tables), "views": int(views), "reps": reps,
           "pg_dump_ms": pg*1000, "dump_json_ms": dump*1000, "dump_sql_ms": dump_sql*1000,
           "diff_ms": diff*1000, "diff_identical_ms": same*1000, "diff_changes": changes,
           "ratio_dump_vs_pg_dump": dump/pg}, open(f"{results}/schema-{stamp}.json", "w"), indent=2)
PY
