#!/usr/bin/env bash
# The fleet benchmark: `pgkeel migrate --targets` over many databases against the baseline of
# running `pgkeel migrate` on them one after another, in one run.
#
#   bench/fleet.sh
#
# Environment:
#   PGKEEL_BENCH_URL        admin URL of the server (default postgresql://postgres@127.0.0.1:5432/postgres);
#                            fresh databases are created and dropped through it
#   PGKEEL_BENCH_DATABASES  databases in the fleet (default 50)
#   PGKEEL_BENCH_N          migrations per database (default 10)
#   PGKEEL_BENCH_PARALLEL   --parallel of the fleet run (default 4)
#   PGKEEL_BENCH_REPS       repetitions of every measurement; the median is reported (default 3)
#   PGKEEL_BIN              binary to measure (default target/release/pgkeel, built when missing)
#
# Prints a table and writes bench/results/fleet-<date>.json. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
HELPER="$BENCH/bench_helper.py"
URL=${PGKEEL_BENCH_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
DATABASES=${PGKEEL_BENCH_DATABASES:-50}
N=${PGKEEL_BENCH_N:-10}
PARALLEL=${PGKEEL_BENCH_PARALLEL:-4}
REPS=${PGKEEL_BENCH_REPS:-3}
BIN=${PGKEEL_BIN:-$ROOT/target/release/pgkeel}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

for tool in python3 psql; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install postgresql-client python3)"
done

# --- cleanup, also on failure and Ctrl-C --------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgkeel-bench-fleet.XXXXXX")
PREFIX="pgkeel_bench_fleet_$$"
DBS=()
drop_dbs() { # NAME...
    local db sql=""
    for db in "$@"; do sql+="DROP DATABASE IF EXISTS \"$db\" WITH (FORCE);"$'\n'; done
    [[ -z $sql ]] || psql -X -q -v ON_ERROR_STOP=1 -d "$URL" <<<"$sql" >/dev/null
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((${#DBS[@]})); then
        drop_dbs "${DBS[@]}" 2>/dev/null || log "could not drop the ${PREFIX}_* databases; drop them by hand"
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# fleet_dbs SET: creates DATABASES fresh databases named ${PREFIX}_SET_<i> (one psql session),
# writes their URLs to $TMP/SET.urls and a targets file to $TMP/SET.toml.
fleet_dbs() {
    local set=$1 i db sql="" base=""
    : >"$TMP/$set.urls"
    : >"$TMP/$set.toml"
    for i in $(seq 1 "$DATABASES"); do
        db="${PREFIX}_${set}_$i"
        sql+="CREATE DATABASE \"$db\";"$'\n'
        DBS+=("$db")
        base=$(python3 "$HELPER" url "$URL" "$db")
        printf '%s\n' "$base" >>"$TMP/$set.urls"
        printf '[[database]]\nurl = "%s"\n' "$base" >>"$TMP/$set.toml"
    done
    psql -X -q -v ON_ERROR_STOP=1 -d "$URL" <<<"$sql" >/dev/null
}
drop_set() { # SET
    local set=$1 keep=() db gone=()
    for db in "${DBS[@]}"; do
        if [[ $db == "${PREFIX}_${set}_"* ]]; then gone+=("$db"); else keep+=("$db"); fi
    done
    drop_dbs "${gone[@]}"
    DBS=("${keep[@]+"${keep[@]}"}")
}
# Every database of SET has all N migrations applied exactly once.
verify_set() { # SET
    local u got bad=0
    while read -r u; do
        got=$(psql -X -q -d "$u" -Atc \
            "SELECT count(*) || '/' || count(DISTINCT id) FROM __drizzle_migrations WHERE status = 'applied'")
        [[ $got == "$N/$N" ]] || { log "$u: ledger has $got applied, expected $N/$N"; bad=1; }
    done <"$TMP/$1.urls"
    ((bad == 0)) || die "set $1 is not fully migrated"
}
quiesce() { psql -X -q -d "$URL" -c CHECKPOINT >/dev/null 2>&1 || true; }

# --- preconditions ------------------------------------------------------------------------------
psql -X -q -d "$URL" -Atc 'SELECT 1' >/dev/null ||
    die "PostgreSQL does not answer at $URL (set PGKEEL_BENCH_URL, or start it: pg_ctlcluster 15 main start)"
FREE=$(psql -X -q -d "$URL" -Atc \
    "SELECT current_setting('max_connections')::int - (SELECT count(*) FROM pg_stat_activity)")
((FREE > PARALLEL + 5)) || die "only $FREE free connection slots on the server; lower PGKEEL_BENCH_PARALLEL"

if [[ ! -x $BIN ]]; then
    log "building the release binary (cargo build --release -p pgkeel-cli)"
    (cd "$ROOT" && cargo build --release -p pgkeel-cli) || die "build failed"
fi

MIG="$TMP/migrations"
log "generating $N migrations in $MIG"
python3 "$HELPER" gen "$MIG" "$N" "$TMP/unused-driver.sql"

SAMPLES="$TMP/samples.tsv"
: >"$SAMPLES"
OUT="$TMP/out"
mkdir -p "$OUT"
ENVARGS=(-u RUST_LOG -u PGKEEL_MIGRATIONS -u DATABASE_URL -u PGKEEL_REPORTS_DIR)

# The baseline: `pgkeel migrate` on each database, one after another (what a deploy script
# without --targets does).
cat >"$TMP/sequential.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
while read -r u; do
    DATABASE_URL="\$u" "$BIN" --no-dotenv --format json migrate --migrations "$MIG" >/dev/null
done <"\$1"
EOF
chmod +x "$TMP/sequential.sh"

measure() { # NAME REP -- CMD...
    local name=$1 rep=$2 secs
    shift 3
    secs=$(cd "$TMP" && env "${ENVARGS[@]}" python3 "$HELPER" time "$OUT/$name.$rep.json" -- "$@")
    printf '%s\t%s\t%s\n' "$name" "$rep" "$secs" >>"$SAMPLES"
    log "$(printf '%-12s run %s: %8.1f ms' "$name" "$rep" "$(awk -v s="$secs" 'BEGIN { print s * 1000 }')")"
}
check_fleet() { # OUT_JSON
    python3 - "$1" "$DATABASES" "$N" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
n, m = int(sys.argv[2]), int(sys.argv[3])
assert doc["ok"] is True, "fleet run not ok"
assert doc["counts"]["ok"] == n, doc["counts"]
assert all(len(t["detail"]["applied"]) == m for t in doc["targets"]), "a target did not apply every migration"
EOF
}

run_sequential() { # REP
    fleet_dbs "seq$1"
    quiesce
    measure sequential "$1" -- "$TMP/sequential.sh" "$TMP/seq$1.urls"
    verify_set "seq$1"
    drop_set "seq$1"
}
run_fleet() { # REP NAME PARALLEL
    local set="$2r$1"
    fleet_dbs "$set"
    quiesce
    measure "$2" "$1" -- "$BIN" --no-dotenv --format json migrate --migrations "$MIG" \
        --targets "$TMP/$set.toml" --parallel "$3" --no-report
    check_fleet "$OUT/$2.$1.json"
    verify_set "$set"
    drop_set "$set"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "binary: $BIN"
log "server: $(psql -X -q -d "$URL" -Atc 'SELECT version()' | cut -d' ' -f1-2)"
log "$DATABASES databases x $N migrations; fleet --parallel $PARALLEL and --parallel 1; $REPS runs"
for rep in $(seq 1 "$REPS"); do
    # Alternate the order so slow drift on a noisy machine hits every measurement.
    if ((rep % 2)); then
        run_sequential "$rep"; run_fleet "$rep" fleet_p1 1; run_fleet "$rep" fleet "$PARALLEL"
    else
        run_fleet "$rep" fleet "$PARALLEL"; run_fleet "$rep" fleet_p1 1; run_sequential "$rep"
    fi
done

# --- report -------------------------------------------------------------------------------------
mkdir -p "$BENCH/results"
RESULT="$BENCH/results/fleet-$(date +%Y-%m-%dT%H%M%S).json"
BENCH_DATABASES=$DATABASES BENCH_N=$N BENCH_PARALLEL=$PARALLEL BENCH_REPS=$REPS BENCH_BIN=$BIN \
BENCH_BIN_SHA="$(sha256sum "$BIN" | cut -c1-16)" \
BENCH_CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)" \
BENCH_CORES="$(nproc)" \
BENCH_PG="$(psql -X -q -d "$URL" -Atc 'SHOW server_version')" \
BENCH_SSL="$(psql -X -q -d "$URL" -Atc 'SHOW ssl')" \
BENCH_VERSION="$("$BIN" --version | awk '{print $2}')" \
BENCH_GIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD -- crates 2>/dev/null || echo '+dirty')" \
BENCH_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)" BENCH_LOAD_START="$LOAD_START" \
python3 - "$SAMPLES" "$RESULT" <<'EOF'
import datetime, json, os, statistics, sys
e = os.environ
samples = {}
for line in open(sys.argv[1]):
    name, rep, secs = line.split()
    samples.setdefault(name, []).append(float(secs))
med = {k: statistics.median(v) for k, v in samples.items()}
speedup = med["sequential"] / med["fleet"]
speedup_p1 = med["sequential"] / med["fleet_p1"]
per_run = [s / f for s, f in zip(samples["sequential"], samples["fleet"])]
meta = {
    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "databases": int(e["BENCH_DATABASES"]), "migrations_per_database": int(e["BENCH_N"]),
    "parallel": int(e["BENCH_PARALLEL"]), "reps": int(e["BENCH_REPS"]),
    "binary": e["BENCH_BIN"], "binary_sha256_prefix": e["BENCH_BIN_SHA"],
    "cpu": e["BENCH_CPU"], "cores": int(e["BENCH_CORES"]), "postgres": "PostgreSQL " + e["BENCH_PG"],
    "server_ssl": e["BENCH_SSL"], "pgkeel_version": e["BENCH_VERSION"], "checkout_git": e["BENCH_GIT"],
    "loadavg_at_start": e["BENCH_LOAD_START"], "loadavg_at_end": e["BENCH_LOAD"],
}
labels = [
    ("sequential", "(a) baseline: pgkeel migrate on each database, one after another"),
    ("fleet_p1", "(b) pgkeel migrate --targets --parallel 1"),
    ("fleet", f"(c) pgkeel migrate --targets --parallel {meta['parallel']}"),
]
print()
print(f"pgkeel fleet benchmark: {meta['databases']} databases x {meta['migrations_per_database']} migrations, "
      f"{meta['reps']} runs each, median")
print(f"  {meta['cpu']} ({meta['cores']} cores), {meta['postgres']}, ssl={meta['server_ssl']}")
print(f"  pgkeel {meta['pgkeel_version']} (checkout {meta['checkout_git']}), load average "
      f"{meta['loadavg_at_start']} at start, {meta['loadavg_at_end']} at end")
print()
for name, label in labels:
    runs = " ".join(f"{x:.2f} s" for x in samples[name])
    print(f"  {label:<68} {med[name]:7.2f} s   runs: {runs}")
print()
print(f"  speed-up (a)/(c) = {speedup:.2f}x   per run: " + ", ".join(f"{r:.2f}" for r in per_run))
print(f"  speed-up (a)/(b) = {speedup_p1:.2f}x   (one process and no per-database start-up, no parallelism)")
result = {
    "benchmark": "fleet", "meta": meta, "unit": "seconds", "samples": samples, "median": med,
    "speedup_sequential_to_fleet": speedup, "speedup_per_run": per_run,
    "speedup_sequential_to_fleet_parallel_1": speedup_p1,
}
with open(sys.argv[2], "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
print(f"results written to {sys.argv[2]}")
EOF
