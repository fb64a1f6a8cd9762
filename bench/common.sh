# Shared setup of bench/validate.sh, bench/testsuite.sh and bench/bucket.sh (sourced, not run). The same
# conventions as bench/migrate.sh: admin URL, fresh databases named pgkeel_bench_<pid>_*,
# dropped on exit (also on failure and Ctrl-C), timings through bench_helper.py, median of reps.
#
# Before sourcing, a script may set BENCH_NAME (used in the temp dir name) and BENCH_TOOLS
# (commands it needs besides python3, psql, createdb and dropdb).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
HELPER="$BENCH/bench_helper.py"
URL=${PGKEEL_BENCH_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
REPS=${PGKEEL_BENCH_REPS:-3}
BIN=${PGKEEL_BIN:-$ROOT/target/release/pgkeel}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

for tool in python3 psql createdb dropdb ${BENCH_TOOLS:-}; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install postgresql-client python3)"
done

# --- cleanup, also on failure and Ctrl-C --------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgkeel-bench-${BENCH_NAME:-x}.XXXXXX")
PREFIX="pgkeel_bench_$$"
DBS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for db in "${DBS[@]}"; do
        dropdb --if-exists --force --maintenance-db="$URL" "$db" >/dev/null 2>&1 ||
            log "could not drop database $db; drop it by hand"
    done
    # pgkeel test drops its scratch databases itself; a killed run may leave a
    # pgkeel_scratch_* database behind.
    # A script's own servers (bench/bucket.sh's moto) are stopped by its bench_stop, if any.
    if declare -F bench_stop >/dev/null; then bench_stop; fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

createdb_fresh() { # NAME
    dropdb --if-exists --force --maintenance-db="$URL" "$1" >/dev/null 2>&1 || true
    createdb --maintenance-db="$URL" "$1"
    DBS+=("$1")
}
dropdb_now() { # NAME
    dropdb --if-exists --force --maintenance-db="$URL" "$1"
    local keep=() db
    for db in "${DBS[@]}"; do [[ $db == "$1" ]] || keep+=("$db"); done
    DBS=("${keep[@]+"${keep[@]}"}")
}
db_url() { python3 "$HELPER" url "$URL" "$1"; }
# Flush dirty buffers so a checkpoint doesn't land in the middle of a measurement. Needs
# superuser; skipped silently otherwise.
quiesce() { psql -X -q -d "$URL" -c CHECKPOINT >/dev/null 2>&1 || true; }

# --- preconditions ------------------------------------------------------------------------------
psql -X -q -d "$URL" -Atc 'SELECT 1' >/dev/null ||
    die "PostgreSQL does not answer at $URL (set PGKEEL_BENCH_URL, or start it: pg_ctlcluster 15 main start)"

if [[ ! -x $BIN ]]; then
    log "building the release binary (cargo build --release -p pgkeel-cli)"
    (cd "$ROOT" && cargo build --release -p pgkeel-cli) || die "build failed"
fi

SAMPLES="$TMP/samples.tsv"
: >"$SAMPLES"
OUT="$TMP/out"
mkdir -p "$OUT"

# Every command runs in the empty temp dir (no pgkeel.toml, no .env there), without RUST_LOG,
# PGKEEL_MIGRATIONS or DATABASE_CONNECTION_POOL_SIZE, and with DATABASE_URL set to DBURL (unset
# when DBURL is empty). Extra variables go in front of the command with `env`.
# OK_EXIT=0,1 accepts exit codes other than 0 (validate exits 1 when it finds a critical row).
measure() { # NAME REP CHECK_KIND CHECK_ARG DBURL -- CMD...
    local name=$1 rep=$2 kind=$3 arg=$4 dburl=$5
    shift 6
    local out="$OUT/$name.$rep.out" secs
    local envargs=(-u RUST_LOG -u PGKEEL_MIGRATIONS -u DATABASE_URL -u DATABASE_CONNECTION_POOL_SIZE)
    [[ -z $dburl ]] || envargs+=(DATABASE_URL="$dburl")
    secs=$(cd "$TMP" && env "${envargs[@]}" python3 "$HELPER" time "$out" --ok-exit "${OK_EXIT:-0}" -- "$@")
    if [[ $kind != - ]]; then python3 "$HELPER" check "$kind" "$out" "$arg"; fi
    printf '%s\t%s\t%s\n' "$name" "$rep" "$secs" >>"$SAMPLES"
    log "$(printf '%-22s run %s: %10.1f ms' "$name" "$rep" "$(awk -v s="$secs" 'BEGIN { print s * 1000 }')")"
}

# Machine and build facts for the results JSON; EXTRA_META is a JSON object merged in.
write_meta() { # OUT_JSON LOAD_AT_START EXTRA_META
    BENCH_REPS=$REPS BENCH_BIN=$BIN BENCH_BIN_SHA="$(sha256sum "$BIN" | cut -c1-16)" \
    BENCH_CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)" \
    BENCH_CORES="$(nproc)" \
    BENCH_PG="$(psql -X -q -d "$URL" -Atc 'SHOW server_version')" \
    BENCH_SSL="$(psql -X -q -d "$URL" -Atc 'SHOW ssl')" \
    BENCH_FSYNC="$(psql -X -q -d "$URL" -Atc "SELECT current_setting('fsync') || '/' || current_setting('synchronous_commit')")" \
    BENCH_PAR="$(psql -X -q -d "$URL" -Atc "SHOW max_parallel_workers_per_gather")" \
    BENCH_SB="$(psql -X -q -d "$URL" -Atc "SHOW shared_buffers")" \
    BENCH_VERSION="$("$BIN" --version | awk '{print $2}')" \
    BENCH_GIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD -- crates 2>/dev/null || echo '+dirty')" \
    BENCH_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)" BENCH_LOAD_START="$2" BENCH_EXTRA="$3" \
    python3 - >"$1" <<'EOF'
import json, os, datetime
e = os.environ
meta = {
    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "reps": int(e["BENCH_REPS"]), "binary": e["BENCH_BIN"], "binary_sha256_prefix": e["BENCH_BIN_SHA"],
    "cpu": e["BENCH_CPU"], "cores": int(e["BENCH_CORES"]), "postgres": "PostgreSQL " + e["BENCH_PG"],
    "server_ssl": e["BENCH_SSL"], "fsync/synchronous_commit": e["BENCH_FSYNC"],
    "max_parallel_workers_per_gather": int(e["BENCH_PAR"]), "shared_buffers": e["BENCH_SB"],
    "pgkeel_version": e["BENCH_VERSION"], "checkout_git": e["BENCH_GIT"],
    "loadavg_at_start": e["BENCH_LOAD_START"], "loadavg_at_end": e["BENCH_LOAD"],
}
meta.update(json.loads(e["BENCH_EXTRA"] or "{}"))
print(json.dumps(meta))
EOF
}
