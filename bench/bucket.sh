#!/usr/bin/env bash
# The bucket benchmark: `pgkeel backup full` into an S3-compatible bucket (moto's server on
# loopback) against the same backup into a local directory, and `pgkeel restore` from each, on
# `pgbench -i -s SCALE`. Reports medians, the bucket/local ratios and peak RSS (the bucket path
# must stay in bounded memory whatever the size).
#
#   bench/bucket.sh
#
# Environment:
#   PGKEEL_BENCH_URL    admin URL of the server (default postgresql://postgres@127.0.0.1:5432/postgres);
#                        the databases it creates are dropped at the end
#   PGKEEL_BENCH_SCALE  pgbench scale (default 20, about 300 MB, which compresses to almost nothing)
#   PGKEEL_BENCH_NOISE  MB of random hex text in a table `noise` (default 200; about half of it
#                        stays after compression, so the upload is real work)
#   PGKEEL_BENCH_REPS   repetitions; the median is reported (default 3)
#   PGKEEL_BIN          binary to measure (default target/release/pgkeel, built when missing)
#   PGKEEL_BENCH_BACKUP_FLAGS  extra flags for both backups (e.g. "--chunk-mib 64")
#
# Needs python3 with moto[server] (scripts/setup.sh installs it), pgbench and /usr/bin/time.
# Writes bench/results/bucket-<date>.json. See bench/README.md.
set -euo pipefail

BENCH_NAME=bucket
BENCH_TOOLS="pgbench curl /usr/bin/time"
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
SCALE=${PGKEEL_BENCH_SCALE:-20}
NOISE=${PGKEEL_BENCH_NOISE:-200}
python3 -c 'import moto.server' 2>/dev/null || die "moto is not installed: scripts/setup.sh (pip install 'moto[server]')"
MOTO_PID=""
bench_stop() { [[ -z $MOTO_PID ]] || kill "$MOTO_PID" 2>/dev/null || true; }

# moto on a free loopback port; the bucket is made with one plain PUT.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$PORT" >"$TMP/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf -X PUT "http://127.0.0.1:$PORT/pgkeel-bench" >/dev/null || die "moto did not start (see $TMP/moto.log)"
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret PGKEEL_STAGING_DIR="$TMP"

SRC="${PREFIX}_src"
createdb_fresh "$SRC"
SRC_URL=$(db_url "$SRC")
log "loading pgbench -i -s $SCALE into $SRC"
pgbench -i -q -s "$SCALE" "$SRC_URL" >/dev/null 2>&1
log "loading $NOISE MB of random hex text into noise"
psql -X -q -v ON_ERROR_STOP=1 -d "$SRC_URL" <<SQL
CREATE TABLE noise (id int PRIMARY KEY, hex text);
INSERT INTO noise SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 16) i)
  FROM generate_series(1, $NOISE * 2048) g;
VACUUM ANALYZE;
SQL
SRC_BYTES=$(psql -X -q -d "$SRC_URL" -Atc 'SELECT pg_database_size(current_database())')
ACCOUNTS=$(psql -X -q -d "$SRC_URL" -Atc 'SELECT count(*) FROM pgbench_accounts')
log "source: $((SRC_BYTES / 1000000)) MB, $ACCOUNTS accounts"

# Wall time and peak RSS (the bucket path must stay in bounded memory), from /usr/bin/time.
measure_rss() { # NAME -- CMD...
    local name=$1
    shift 2
    quiesce
    /usr/bin/time -f '%e %M' -o "$TMP/time" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" ||
        { cat "$TMP/$name.err" >&2; die "$name failed"; }
    local secs rss
    read -r secs rss <"$TMP/time"
    printf '%s\t%s\t%s\n' "$name" "$secs" "$rss" >>"$SAMPLES"
    log "$(printf '%-22s %7.2f s  %7d MB RSS' "$name" "$secs" $((rss / 1024)))"
}
check_restored() { # DB
    local n
    n=$(psql -X -q -d "$(db_url "$1")" -Atc 'SELECT count(*) FROM pgbench_accounts')
    [[ $n == "$ACCOUNTS" ]] || die "$1 holds $n accounts, expected $ACCOUNTS"
}
PGKEEL=(env -u RUST_LOG DATABASE_URL="$SRC_URL" "$BIN" --no-dotenv)

for rep in $(seq 1 "$REPS"); do
    # Alternate the order so neither side always runs on a warmer cache.
    for side in $( ((rep % 2)) && echo "local bucket" || echo "bucket local"); do
        if [[ $side == local ]]; then
            measure_rss backup_local -- "${PGKEEL[@]}" backup full --dir "$TMP/local" --name "b$rep" --jobs 2 ${PGKEEL_BENCH_BACKUP_FLAGS:-}
        else
            measure_rss backup_bucket -- "${PGKEEL[@]}" backup full --dir "s3://pgkeel-bench/run" --name "b$rep" --jobs 2 ${PGKEEL_BENCH_BACKUP_FLAGS:-}
        fi
    done
    DST="${PREFIX}_l$rep"; createdb_fresh "$DST"
    measure_rss restore_local -- "${PGKEEL[@]}" restore "$TMP/local/b$rep" --target-url "$(db_url "$DST")" --jobs 2
    check_restored "$DST"; dropdb_now "$DST"
    DST="${PREFIX}_b$rep"; createdb_fresh "$DST"
    measure_rss restore_bucket -- "${PGKEEL[@]}" restore "b$rep" --dir "s3://pgkeel-bench/run" --target-url "$(db_url "$DST")" --jobs 2
    check_restored "$DST"; dropdb_now "$DST"
    rm -rf "$TMP/local/b$rep"
done
STORED=$("${PGKEEL[@]}" backup list --dir "s3://pgkeel-bench/run" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backups"][0]["stored_bytes"])')

mkdir -p "$ROOT/bench/results"
RESULT="$ROOT/bench/results/bucket-$(date +%Y-%m-%dT%H%M%S).json"
BENCH_SCALE=$SCALE BENCH_NOISE=$NOISE BENCH_REPS=$REPS BENCH_SRC_BYTES=$SRC_BYTES BENCH_STORED=$STORED \
BENCH_PG="$(psql -X -q -d "$URL" -Atc 'SHOW server_version')" BENCH_CORES="$(nproc)" \
BENCH_MOTO="$(python3 -c 'import moto; print(moto.__version__)')" \
BENCH_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)" \
BENCH_GIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
python3 - "$SAMPLES" "$RESULT" <<'PY'
import json, os, statistics, sys, datetime
rows = {}
for line in open(sys.argv[1]):
    name, secs, rss = line.split("\t")
    rows.setdefault(name, []).append((float(secs), int(rss)))
med = {n: {"seconds": statistics.median(s for s, _ in v), "peak_rss_mb": max(r for _, r in v) / 1024,
           "runs": [s for s, _ in v]} for n, v in rows.items()}
ratios = {
    "backup_bucket_vs_local": med["backup_bucket"]["seconds"] / med["backup_local"]["seconds"],
    "restore_bucket_vs_local": med["restore_bucket"]["seconds"] / med["restore_local"]["seconds"],
}
e = os.environ
doc = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
       "pgbench_scale": int(e["BENCH_SCALE"]), "noise_mb": int(e["BENCH_NOISE"]), "reps": int(e["BENCH_REPS"]),
       "source_database_bytes": int(e["BENCH_SRC_BYTES"]), "stored_bytes": int(e["BENCH_STORED"]),
       "postgres": e["BENCH_PG"], "moto": e["BENCH_MOTO"], "cores": int(e["BENCH_CORES"]),
       "loadavg_at_end": e["BENCH_LOAD"], "git": e["BENCH_GIT"], "results": med, "ratios": ratios}
json.dump(doc, open(sys.argv[2], "w"), indent=2)
print(f"{'command':<16} {'median s':>9} {'peak RSS MB':>12}  runs")
for n, m in med.items():
    print(f"{n:<16} {m['seconds']:>9.2f} {m['peak_rss_mb']:>12.0f}  {m['runs']}")
for k, v in ratios.items():
    print(f"{k:<26} {v:.2f}x")
print(f"stored: {int(e['BENCH_STORED']) / 1e6:.1f} MB of a {int(e['BENCH_SRC_BYTES']) / 1e6:.0f} MB database")
print(f"written to {sys.argv[2]}")
PY
