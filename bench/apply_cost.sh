#!/usr/bin/env bash
# What the apply costs beyond its SQL: pgkeel migrate against psql applying the same files, one
# transaction each, in one session.
#
#   bench/apply_cost.sh
#
# Two workloads (issue: "rollback that never lies, at no cost to the apply"):
#   trivial    PGKEEL_BENCH_N (default 1000) migrations of one `SELECT n;` each
#   functions  20 migrations of one `CREATE OR REPLACE FUNCTION` each, replacing existing
#              functions, on a database of PGKEEL_BENCH_TABLES (default 2000) tables
#   views      20 migrations of one `CREATE OR REPLACE VIEW` each, replacing existing views, on
#              the same database (no parse-tree inverse: a state-based rollback from snapshots
#              scoped to the view's relations, never every table)
# The ratio pgkeel / psql of each (median of PGKEEL_BENCH_REPS runs, default 3) is printed and
# written to bench/results/apply-cost-<date>.json. See bench/README.md.
set -euo pipefail

BENCH_NAME=apply-cost
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
N=${PGKEEL_BENCH_N:-1000}
TABLES=${PGKEEL_BENCH_TABLES:-2000}
FUNCS=20

python3 - "$TMP" "$N" "$TABLES" "$FUNCS" <<'PY'
import os, sys
tmp, n, tables, funcs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for name in ("trivial", "functions", "views"):
    os.makedirs(f"{tmp}/{name}", exist_ok=True)
with open(f"{tmp}/trivial.sql", "w") as drv:
    for i in range(1, n + 1):
        sql = f"SELECT {i};\n"
        open(f"{tmp}/trivial/{i:04d}_q{i:04d}.sql", "w").write(sql)
        drv.write(f"BEGIN;\n{sql}COMMIT;\n")
with open(f"{tmp}/setup.sql", "w") as f:
    for t in range(1, tables + 1):
        f.write(f"CREATE TABLE t{t:04d} (id bigint PRIMARY KEY, name text NOT NULL, "
                f"created_at timestamptz DEFAULT now());\n"
                f"CREATE INDEX t{t:04d}_created ON t{t:04d} (created_at);\n")
    for k in range(1, funcs + 1):
        f.write(f"CREATE FUNCTION f{k:02d}(x int) RETURNS int LANGUAGE sql AS 'SELECT x';\n")
        f.write(f"CREATE VIEW v{k:02d} AS SELECT id FROM t{k:04d};\n")
with open(f"{tmp}/functions.sql", "w") as drv:
    for k in range(1, funcs + 1):
        sql = (f"CREATE OR REPLACE FUNCTION f{k:02d}(x int) RETURNS int LANGUAGE sql "
               f"AS 'SELECT x + {k}';\n")
        open(f"{tmp}/functions/{k:04d}_f{k:02d}.sql", "w").write(sql)
        drv.write(f"BEGIN;\n{sql}COMMIT;\n")
with open(f"{tmp}/views.sql", "w") as drv:
    for k in range(1, funcs + 1):
        sql = f"CREATE OR REPLACE VIEW v{k:02d} AS SELECT id, name FROM t{k:04d};\n"
        open(f"{tmp}/views/{k:04d}_v{k:02d}.sql", "w").write(sql)
        drv.write(f"BEGIN;\n{sql}COMMIT;\n")
PY

run() { # WORKLOAD REP
    local w=$1 rep=$2 db dburl
    for tool in psql pgkeel; do
        db="${PREFIX}_${w}_${tool}_${rep}"
        createdb_fresh "$db"
        dburl=$(db_url "$db")
        if [[ $w != trivial ]]; then
            psql -X -q -v ON_ERROR_STOP=1 -d "$dburl" -f "$TMP/setup.sql" >/dev/null
            psql -X -q -d "$dburl" -c ANALYZE >/dev/null
        fi
        quiesce
        if [[ $tool == psql ]]; then
            measure "${w}_psql" "$rep" - - "$dburl" -- psql -X -q -v ON_ERROR_STOP=1 -d "$dburl" -f "$TMP/$w.sql"
        else
            measure "${w}_pgkeel" "$rep" - - "$dburl" -- "$BIN" --no-dotenv migrate --migrations "$TMP/$w"
        fi
        dropdb_now "$db"
    done
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for rep in $(seq 1 "$REPS"); do
    run trivial "$rep"
    run functions "$rep"
    run views "$rep"
done

META="$TMP/meta.json"
write_meta "$META" "$LOAD_START" "{\"trivial_migrations\": $N, \"tables\": $TABLES, \"function_migrations\": $FUNCS}"
mkdir -p "$BENCH/results"
RESULT="$BENCH/results/apply-cost-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$SAMPLES" "$META" "$RESULT" <<'PY'
import json, statistics, sys
samples, meta, out = sys.argv[1:4]
runs = {}
for line in open(samples):
    name, rep, secs = line.split()
    runs.setdefault(name, []).append(float(secs))
res = {"meta": json.load(open(meta)), "median_seconds": {}, "ratios": {}}
for k, v in sorted(runs.items()):
    res["median_seconds"][k] = round(statistics.median(v), 4)
for w, goal in (("trivial", 1.5), ("functions", 1.3), ("views", 1.3)):
    r = statistics.median(runs[f"{w}_pgkeel"]) / statistics.median(runs[f"{w}_psql"])
    res["ratios"][w] = {"pgkeel_over_psql": round(r, 2), "goal": goal, "met": r <= goal}
    print(f"{w:10s} psql {statistics.median(runs[w + '_psql']) * 1000:9.1f} ms   "
          f"pgkeel {statistics.median(runs[w + '_pgkeel']) * 1000:9.1f} ms   "
          f"ratio {r:5.2f} (goal <= {goal})")
json.dump(res, open(out, "w"), indent=2)
print(f"written {out}")
PY
