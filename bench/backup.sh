#!/usr/bin/env bash
# The backup benchmark: `pgkeel backup full` against `pg_dump -Fc` and `pg_dump -Fd -j 2`, and
# `pgkeel restore` against `pg_restore -j 2`, on `pgbench -i -s SCALE` plus a mixed-type table.
#
#   bench/backup.sh
#
# Environment:
#   PGKEEL_BENCH_URL    admin URL of the server (default postgresql://postgres@127.0.0.1:5432/postgres);
#                        the databases it creates are dropped at the end
#   PGKEEL_BENCH_SCALE  pgbench scale (default 20, about 300 MB)
#   PGKEEL_BENCH_MIXED  rows of the mixed-type table (default 300000)
#   PGKEEL_BENCH_REPS   repetitions; the median is reported (default 2)
#   BACKUP_COMPRESSION_LEVEL  pgkeel's level (default 6, the spec's: zstd level 3), recorded
#                        in the results
#   PGKEEL_BIN          binary to measure (default target/release/pgkeel, built when missing)
#
# Wall time and peak RSS come from /usr/bin/time. Prints a table of medians and ratios and writes
# bench/results/backup-<date>.json. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
URL=${PGKEEL_BENCH_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
SCALE=${PGKEEL_BENCH_SCALE:-20}
MIXED=${PGKEEL_BENCH_MIXED:-300000}
REPS=${PGKEEL_BENCH_REPS:-2}
export BACKUP_COMPRESSION_LEVEL=${BACKUP_COMPRESSION_LEVEL:-6}
BIN=${PGKEEL_BIN:-$ROOT/target/release/pgkeel}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }
for tool in psql createdb dropdb pg_dump pg_restore pgbench python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install postgresql-client postgresql-contrib time python3)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgkeel-bench-backup.XXXXXX")
PREFIX="pgkeel_bench_bk_$$"
DBS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for db in "${DBS[@]+"${DBS[@]}"}"; do
        dropdb --if-exists --force --maintenance-db="$URL" "$db" >/dev/null 2>&1 || log "could not drop $db"
    done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

db_url() { python3 -c 'import sys; from urllib.parse import urlsplit, urlunsplit; p = urlsplit(sys.argv[1]); print(urlunsplit((p.scheme, p.netloc, "/" + sys.argv[2], p.query, p.fragment)))' "$URL" "$1"; }
fresh_db() { dropdb --if-exists --force --maintenance-db="$URL" "$1" >/dev/null 2>&1 || true; createdb --maintenance-db="$URL" "$1"; DBS+=("$1"); }
drop_db() { dropdb --if-exists --force --maintenance-db="$URL" "$1"; }
quiesce() { sync; psql -X -q -d "$URL" -c CHECKPOINT >/dev/null 2>&1 || true; }

psql -X -q -d "$URL" -Atc 'SELECT 1' >/dev/null || die "PostgreSQL does not answer at $URL"
if [[ ! -x $BIN ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release -p pgkeel-cli) || die "build failed"
fi

SRC="${PREFIX}_src"
fresh_db "$SRC"
SRC_URL=$(db_url "$SRC")
log "loading pgbench -i -s $SCALE and $MIXED mixed-type rows into $SRC"
pgbench -i -q -s "$SCALE" "$SRC_URL" >/dev/null 2>&1
psql -X -q -v ON_ERROR_STOP=1 -d "$SRC_URL" <<SQL
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE mixed (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    amount numeric(14, 4), at timestamptz, doc jsonb, tags text[], blob bytea, feeling mood,
    note text, updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO mixed (amount, at, doc, tags, blob, feeling, note)
SELECT g * 1.2345, now() - g * interval '1 minute',
       jsonb_build_object('id', g, 'name', 'user ' || g, 'flags', jsonb_build_array(g % 2 = 0, g % 3 = 0)),
       ARRAY['t' || (g % 10), 'u' || (g % 7)], decode(md5(g::text), 'hex'),
       (ARRAY['sad', 'ok', 'happy']::mood[])[1 + g % 3], E'line\twith tab ' || md5(g::text)
  FROM generate_series(1, $MIXED) g;
CREATE INDEX mixed_at_idx ON mixed (at);
VACUUM ANALYZE;
SQL
SRC_BYTES=$(psql -X -q -d "$SRC_URL" -Atc 'SELECT pg_database_size(current_database())')
ACCOUNTS=$(psql -X -q -d "$SRC_URL" -Atc 'SELECT count(*) FROM pgbench_accounts')
log "source: $((SRC_BYTES / 1000000)) MB, $ACCOUNTS accounts"

SAMPLES="$TMP/samples.tsv"
: >"$SAMPLES"
measure() { # NAME SIZE_PATH -- CMD...
    local name=$1 size_path=$2
    shift 3
    quiesce
    /usr/bin/time -f '%e %M' -o "$TMP/time" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" ||
        { cat "$TMP/$name.err" >&2; die "$name failed"; }
    local secs rss size=0
    read -r secs rss <"$TMP/time"
    [[ $size_path == - ]] || size=$(du -sb "$size_path" | cut -f1)
    printf '%s\t%s\t%s\t%s\n' "$name" "$secs" "$rss" "$size" >>"$SAMPLES"
    log "$(printf '%-22s %7.2f s  %7d MB RSS  %8d MB' "$name" "$secs" $((rss / 1024)) $((size / 1000000)))"
}
check_restored() { # DB
    local n
    n=$(psql -X -q -d "$(db_url "$1")" -Atc 'SELECT count(*) FROM pgbench_accounts')
    [[ $n == "$ACCOUNTS" ]] || die "$1 holds $n accounts, expected $ACCOUNTS"
}

for rep in $(seq 1 "$REPS"); do
    out="$TMP/rep$rep"
    mkdir -p "$out"
    measure pg_dump_Fc "$out/db.dump" -- pg_dump -Fc -f "$out/db.dump" -d "$SRC_URL"
    measure pg_dump_Fd_j2 "$out/dir" -- pg_dump -Fd -j 2 -f "$out/dir" -d "$SRC_URL"
    measure pgkeel_backup "$out/bk/b" -- env -u RUST_LOG DATABASE_URL="$SRC_URL" \
        "$BIN" --no-dotenv backup full --dir "$out/bk" --name b --jobs 2
    DST="${PREFIX}_r1_$rep"; fresh_db "$DST"
    measure pg_restore_j2 - -- pg_restore -j 2 --no-owner --no-acl -d "$(db_url "$DST")" "$out/db.dump"
    check_restored "$DST"; drop_db "$DST"
    DST="${PREFIX}_r2_$rep"; fresh_db "$DST"
    measure pgkeel_restore - -- env -u RUST_LOG DATABASE_URL="$SRC_URL" \
        "$BIN" --no-dotenv restore "$out/bk/b" --target-url "$(db_url "$DST")" --jobs 2
    check_restored "$DST"; drop_db "$DST"
    rm -rf "$out"
done

mkdir -p "$ROOT/bench/results"
RESULT="$ROOT/bench/results/backup-$(date +%Y-%m-%dT%H%M%S).json"
BENCH_SCALE=$SCALE BENCH_MIXED=$MIXED BENCH_REPS=$REPS BENCH_SRC_BYTES=$SRC_BYTES \
BENCH_PG="$(psql -X -q -d "$URL" -Atc 'SHOW server_version')" BENCH_CORES="$(nproc)" \
BENCH_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)" BENCH_LEVEL="$BACKUP_COMPRESSION_LEVEL" \
BENCH_GIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
python3 - "$SAMPLES" "$RESULT" <<'PY'
import json, os, statistics, sys, datetime
rows = {}
for line in open(sys.argv[1]):
    name, secs, rss, size = line.split("\t")
    rows.setdefault(name, []).append((float(secs), int(rss), int(size)))
med = {n: {"seconds": statistics.median(s for s, _, _ in v),
           "peak_rss_mb": max(r for _, r, _ in v) / 1024,
           "bytes": statistics.median(b for _, _, b in v),
           "runs": [s for s, _, _ in v]} for n, v in rows.items()}
def ratio(a, b): return med[a]["seconds"] / med[b]["seconds"]
ratios = {
    "backup_speedup_vs_pg_dump_Fc": ratio("pg_dump_Fc", "pgkeel_backup"),
    "backup_speedup_vs_pg_dump_Fd_j2": ratio("pg_dump_Fd_j2", "pgkeel_backup"),
    "size_vs_pg_dump_Fc": med["pgkeel_backup"]["bytes"] / med["pg_dump_Fc"]["bytes"],
    "restore_speedup_vs_pg_restore_j2": ratio("pg_restore_j2", "pgkeel_restore"),
}
e = os.environ
doc = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
       "pgbench_scale": int(e["BENCH_SCALE"]), "mixed_rows": int(e["BENCH_MIXED"]), "reps": int(e["BENCH_REPS"]),
       "source_database_bytes": int(e["BENCH_SRC_BYTES"]), "postgres": e["BENCH_PG"], "cores": int(e["BENCH_CORES"]),
       "loadavg_at_end": e["BENCH_LOAD"], "git": e["BENCH_GIT"],
       "backup_compression_level": e["BENCH_LEVEL"], "results": med, "ratios": ratios}
json.dump(doc, open(sys.argv[2], "w"), indent=2)
print(f"{'command':<22} {'median s':>9} {'peak RSS MB':>12} {'output MB':>10}")
for n, m in med.items():
    print(f"{n:<22} {m['seconds']:>9.2f} {m['peak_rss_mb']:>12.0f} {m['bytes'] / 1e6:>10.1f}")
for k, v in ratios.items():
    print(f"{k:<36} {v:.2f}x")
print(f"written to {sys.argv[2]}")
PY
