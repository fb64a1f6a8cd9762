#!/usr/bin/env bash
# The migrate benchmark: pgkeel against the psql floor on 1000 generated migrations.
#
#   bench/migrate.sh
#
# Environment:
#   PGKEEL_BENCH_URL   admin URL of the server (default postgresql://postgres@127.0.0.1:5432/postgres);
#                       fresh databases are created and dropped through it
#   PGKEEL_BENCH_N     number of migrations (default 1000)
#   PGKEEL_BENCH_REPS  repetitions of every measurement; the median is reported (default 3)
#   PGKEEL_BIN         binary to measure (default target/release/pgkeel, built when missing)
#
# Prints a table and writes bench/results/migrate-<date>.json. See bench/README.md.
set -euo pipefail

BENCH_NAME=migrate
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
N=${PGKEEL_BENCH_N:-1000}

MIG="$TMP/migrations"
DRIVER="$TMP/driver.sql"
log "generating $N migrations in $MIG"
python3 "$HELPER" gen "$MIG" "$N" "$DRIVER"

# Every command runs in the empty temp dir (no pgkeel.toml, no .env there), without RUST_LOG or
# PGKEEL_MIGRATIONS, and with DATABASE_URL set to the run's database (unset for offline runs).
measure() { # NAME REP CHECK_KIND DBURL -- CMD...
    local name=$1 rep=$2 kind=$3 dburl=$4
    shift 5
    local out="$OUT/$name.$rep.json" secs
    local envargs=(-u RUST_LOG -u PGKEEL_MIGRATIONS -u DATABASE_URL)
    [[ -z $dburl ]] || envargs+=(DATABASE_URL="$dburl")
    secs=$(cd "$TMP" && env "${envargs[@]}" python3 "$HELPER" time "$out" -- "$@")
    if [[ $kind != - ]]; then python3 "$HELPER" check "$kind" "$out" "$N"; fi
    printf '%s\t%s\t%s\n' "$name" "$rep" "$secs" >>"$SAMPLES"
    log "$(printf '%-17s run %s: %8.1f ms' "$name" "$rep" "$(awk -v s="$secs" 'BEGIN { print s * 1000 }')")"
}

run_floor() { # REP
    local db="${PREFIX}_floor_$1" dburl tables
    createdb_fresh "$db"
    dburl=$(db_url "$db")
    quiesce
    measure floor_psql "$1" - "$dburl" -- psql -X -q -v ON_ERROR_STOP=1 -d "$dburl" -f "$DRIVER"
    tables=$(psql -X -q -d "$dburl" -Atc \
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'table\_%'")
    [[ $tables == "$N" ]] || die "the floor run created $tables tables, expected $N"
    dropdb_now "$db"
}
run_pgkeel() { # REP
    local db="${PREFIX}_pgkeel_$1" dburl
    createdb_fresh "$db"
    dburl=$(db_url "$db")
    quiesce
    measure migrate_empty "$1" migrate "$dburl" -- "$BIN" --no-dotenv --format json migrate --migrations "$MIG"
    # Reference for the 30 ms goal: what any client pays to connect and run one query.
    measure connect_psql "$1" - "$dburl" -- psql -X -q -d "$dburl" -c 'SELECT 1'
    measure migrate_noop "$1" noop "$dburl" -- "$BIN" --no-dotenv --format json migrate --migrations "$MIG"
    measure status "$1" status "$dburl" -- "$BIN" --no-dotenv --format json status --migrations "$MIG"
    dropdb_now "$db"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "binary: $BIN"
log "server: $(psql -X -q -d "$URL" -Atc 'SELECT version()' | cut -d' ' -f1-2)"
for rep in $(seq 1 "$REPS"); do
    # Alternate which of (a) and (b) goes first so slow drift on a noisy machine hits both.
    if ((rep % 2)); then run_floor "$rep"; run_pgkeel "$rep"; else run_pgkeel "$rep"; run_floor "$rep"; fi
    measure validate_offline "$rep" validate "" -- "$BIN" --no-dotenv --format json migrate validate --offline --migrations "$MIG"
done

# --- report -------------------------------------------------------------------------------------
META="$TMP/meta.json"
BENCH_N=$N BENCH_REPS=$REPS BENCH_BIN=$BIN BENCH_BIN_SHA="$(sha256sum "$BIN" | cut -c1-16)" \
BENCH_CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)" \
BENCH_CORES="$(nproc)" \
BENCH_PG="$(psql -X -q -d "$URL" -Atc 'SHOW server_version')" \
BENCH_SSL="$(psql -X -q -d "$URL" -Atc 'SHOW ssl')" \
BENCH_FSYNC="$(psql -X -q -d "$URL" -Atc "SELECT current_setting('fsync') || '/' || current_setting('synchronous_commit')")" \
BENCH_VERSION="$("$BIN" --version | awk '{print $2}')" \
BENCH_GIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD -- crates 2>/dev/null || echo '+dirty')" \
BENCH_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)" BENCH_LOAD_START="$LOAD_START" \
python3 - >"$META" <<'EOF'
import json, os, datetime
e = os.environ
print(json.dumps({
    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "migrations": int(e["BENCH_N"]), "reps": int(e["BENCH_REPS"]), "binary": e["BENCH_BIN"], "binary_sha256_prefix": e["BENCH_BIN_SHA"],
    "cpu": e["BENCH_CPU"], "cores": int(e["BENCH_CORES"]), "postgres": "PostgreSQL " + e["BENCH_PG"],
    "server_ssl": e["BENCH_SSL"], "fsync/synchronous_commit": e["BENCH_FSYNC"],
    "pgkeel_version": e["BENCH_VERSION"], "checkout_git": e["BENCH_GIT"], "loadavg_at_start": e["BENCH_LOAD_START"], "loadavg_at_end": e["BENCH_LOAD"],
}))
EOF
mkdir -p "$BENCH/results"
python3 "$HELPER" report "$SAMPLES" "$BENCH/results/migrate-$(date +%Y-%m-%dT%H%M%S).json" "$META"
