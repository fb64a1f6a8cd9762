#!/usr/bin/env bash
# The test-suite benchmark (issue 8), in one run:
#   `pgkeel test` on bench/migrate.sh's generated folder, against the plain apply
#   (`pgkeel migrate` of the same folder into a fresh database), and `pgkeel lint` of every
#   file of that folder.
#
#   bench/testsuite.sh
#   PGKEEL_BENCH_N=1000 bench/testsuite.sh      # the full 1000-migration folder (slow, see README)
#
# Environment:
#   PGKEEL_BENCH_URL   admin URL (default postgresql://postgres@127.0.0.1:5432/postgres); the
#                       apply databases are created and dropped through it, and `pgkeel test`
#                       creates its scratch database there (--scratch-url)
#   PGKEEL_BENCH_N     migrations (default 300: see bench/README.md for why not 1000)
#   PGKEEL_BENCH_LINT_N  migrations of the lint measurement (default 1000, no database)
#   PGKEEL_BENCH_REPS  repetitions; the median is reported (default 3)
#   PGKEEL_BENCH_NO_ROUND_TRIP  1 (default) also measures `pgkeel test --no-round-trip`; 0 skips it
#   PGKEEL_BIN         binary (default target/release/pgkeel, built when missing)
#
# Prints a table and writes bench/results/testsuite-<date>.json. See bench/README.md.
set -euo pipefail
BENCH_NAME=testsuite
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

N=${PGKEEL_BENCH_N:-300}
LINT_N=${PGKEEL_BENCH_LINT_N:-1000}
NO_RT=${PGKEEL_BENCH_NO_ROUND_TRIP:-1}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "binary: $BIN"
log "server: $(psql -X -q -d "$URL" -Atc 'SELECT version()' | cut -d' ' -f1-2)"

# The same generator as bench/migrate.sh (bench_helper.py gen).
MIG="$TMP/migrations"
log "generating $N migrations in $MIG"
python3 "$HELPER" gen "$MIG" "$N" "$TMP/driver.sql"
LINT_MIG="$TMP/lint-migrations"
python3 "$HELPER" gen "$LINT_MIG" "$LINT_N" "$TMP/lint-driver.sql"
LINT_FILES=("$LINT_MIG"/*.sql)

# --- lint: no database --------------------------------------------------------------------------
# --pg-version 15 so lint does not try the configured server for its version.
"$BIN" --no-dotenv --version >/dev/null # warm-up
for rep in $(seq 1 "$REPS"); do
    measure version "$rep" - - "" -- "$BIN" --no-dotenv --version
    measure cat "$rep" - - "" -- cat "${LINT_FILES[@]}"
    OK_EXIT=0,1 measure lint "$rep" lint "$LINT_N" "" -- \
        "$BIN" --no-dotenv --format json lint --pg-version 15 "${LINT_FILES[@]}"
done

# --- test against apply -------------------------------------------------------------------------
run_migrate() { # REP
    local db="${PREFIX}_apply_$1" dburl
    createdb_fresh "$db"
    dburl=$(db_url "$db")
    quiesce
    measure migrate_empty "$1" migrate "$N" "$dburl" -- "$BIN" --no-dotenv --format json migrate --migrations "$MIG"
    dropdb_now "$db"
}
run_test() { # NAME REP KIND FLAGS...
    local name=$1 rep=$2 kind=$3
    shift 3
    quiesce
    # No DATABASE_URL: the scratch database is created on --scratch-url; the target is never
    # touched anyway.
    measure "$name" "$rep" "$kind" "$N" "" -- "$BIN" --no-dotenv --format json test \
        --migrations "$MIG" --scratch-url "$URL" --pg-version 15 --no-report "$@"
}
for rep in $(seq 1 "$REPS"); do
    # Alternate the order so slow drift on a noisy machine hits both.
    if ((rep % 2)); then
        run_migrate "$rep"; run_test test "$rep" test-rt
    else
        run_test test "$rep" test-rt; run_migrate "$rep"
    fi
    if [[ $NO_RT == 1 ]]; then run_test test_no_round_trip "$rep" test --no-round-trip; fi
done

# Where `pgkeel test` spent its time, from its own report of the last run.
python3 - "$OUT/test.$REPS.out" >&2 <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
ms = doc["migrations"]
apply = sum(m["apply_ms"] for m in ms)
rollback = sum(m["rollback_ms"] for m in ms)
n = len(ms)
print(f"[bench] pgkeel test (last run): duration_ms {doc['duration_ms']}, apply_ms {apply}, rollback_ms {rollback}, "
      f"other (re-apply, 3 schema snapshots and diffs per migration, lint) {doc['duration_ms'] - apply - rollback}")
q = max(n // 4, 1)
for lo in range(0, n, q):
    part = ms[lo:lo + q]
    print(f"[bench]   migrations {lo + 1}-{lo + len(part)}: apply {sum(m['apply_ms'] for m in part)} ms, "
          f"rollback {sum(m['rollback_ms'] for m in part)} ms")
PY

# --- report -------------------------------------------------------------------------------------
META="$TMP/meta.json"
write_meta "$META" "$LOAD_START" "$(printf '{"migrations": %s, "lint_files": %s}' "$N" "$LINT_N")"
mkdir -p "$BENCH/results"
python3 "$HELPER" report-testsuite "$SAMPLES" "$BENCH/results/testsuite-$(date +%Y-%m-%dT%H%M%S).json" "$META"
