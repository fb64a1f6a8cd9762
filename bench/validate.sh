#!/usr/bin/env bash
# The validate benchmark (issue 5), in one run:
#   data:   `pgkeel validate --data` on a child table of PGKEEL_BENCH_ROWS rows with 4 foreign
#           keys, against the baseline of running the minimal anti-join per key by hand with
#           psql, one after the other;
#   schema: `pgkeel validate --schema --expected <snapshot>` of a 2000-table schema against its
#           own snapshot (no drift), with `pgkeel schema dump` and `pg_dump --schema-only`.
#
#   bench/validate.sh
#   PGKEEL_BENCH_ROWS=1000000 PGKEEL_BENCH_TABLES=200 bench/validate.sh    # a quick run
#
# Environment:
#   PGKEEL_BENCH_URL     admin URL (default postgresql://postgres@127.0.0.1:5432/postgres);
#                         fresh databases are created and dropped through it
#   PGKEEL_BENCH_ROWS    rows of the child table (default 10000000)
#   PGKEEL_BENCH_TABLES  tables of the schema part (default 2000, bench/schema.sh's generator)
#   PGKEEL_BENCH_VIEWS   views of the schema part (default 200)
#   PGKEEL_BENCH_POOL    DATABASE_CONNECTION_POOL_SIZE of the parallel data run (default 4, one
#                         connection per foreign key); the other data run uses 1
#   PGKEEL_BENCH_REPS    repetitions; the median is reported (default 3)
#   PGKEEL_BIN           binary (default target/release/pgkeel, built when missing)
#   PGKEEL_BENCH_PART    data, schema or all (default all)
#
# Prints a table and writes bench/results/validate-<date>.json. See bench/README.md.
set -euo pipefail
BENCH_NAME=validate
BENCH_TOOLS=pg_dump
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROWS=${PGKEEL_BENCH_ROWS:-10000000}
TABLES=${PGKEEL_BENCH_TABLES:-2000}
VIEWS=${PGKEEL_BENCH_VIEWS:-200}
POOL=${PGKEEL_BENCH_POOL:-4}
PART=${PGKEEL_BENCH_PART:-all}
case $PART in data | schema | all) ;; *) die "PGKEEL_BENCH_PART must be data, schema or all" ;; esac
((TABLES >= 20)) || die "PGKEEL_BENCH_TABLES must be at least 20"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "binary: $BIN"
log "server: $(psql -X -q -d "$URL" -Atc 'SELECT version()' | cut -d' ' -f1-2)"
GEN_DATA_S=null
GEN_SCHEMA_S=null

# --- data: the database -------------------------------------------------------------------------
# order_lines(ROWS + 7 rows) → customers (ROWS/10), products (ROWS/100), stores (1000),
# coupons (ROWS/1000). store_id is NULL in 2 % of the rows, coupon_id in 90 %.
# Orphans planted (the FK column → rows without a parent):
#   customer_id 3 and product_id 2, inserted before their keys were added NOT VALID (warnings);
#   store_id 2, inserted with session_replication_role = replica after the key was validated
#   (critical: what a restore with triggers off leaves behind); coupon_id none.
FKS=(customer_id:customers product_id:products store_id:stores coupon_id:coupons)
PLANTED="customer_id=3,product_id=2,store_id=2,coupon_id=0"
planted() { # COLUMN
    local kv
    for kv in ${PLANTED//,/ }; do [[ ${kv%%=*} == "$1" ]] && echo "${kv#*=}"; done
}

gen_data() { # DBURL
    local p1=$((ROWS / 10 > 100 ? ROWS / 10 : 100)) p2=$((ROWS / 100 > 100 ? ROWS / 100 : 100))
    local p4=$((ROWS / 1000 > 100 ? ROWS / 1000 : 100))
    psql -X -q -v ON_ERROR_STOP=1 -d "$1" -v n="$ROWS" -v p1="$p1" -v p2="$p2" -v p3=1000 -v p4="$p4" <<'SQL'
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE products (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE stores (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE coupons (id bigint PRIMARY KEY, code text NOT NULL);
INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, :p1) g;
INSERT INTO products SELECT g, 'product ' || g FROM generate_series(1, :p2) g;
INSERT INTO stores SELECT g, 'store ' || g FROM generate_series(1, :p3) g;
INSERT INTO coupons SELECT g, 'C' || g FROM generate_series(1, :p4) g;

-- The primary key is added after the load (a sorted build is faster than 10M index inserts).
CREATE TABLE order_lines (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    customer_id  bigint NOT NULL,
    product_id   bigint NOT NULL,
    store_id     bigint,
    coupon_id    bigint,
    quantity     integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO order_lines (id, customer_id, product_id, store_id, coupon_id, quantity)
OVERRIDING SYSTEM VALUE
SELECT g,
       1 + (g * 7919) % :p1,
       1 + (g * 104729) % :p2,
       CASE WHEN g % 50 <> 0 THEN 1 + (g * 31) % :p3 END,
       CASE WHEN g % 10 = 0 THEN 1 + (g / 10) % :p4 END,
       1 + (g % 5)::int
  FROM generate_series(1::bigint, :n) g;
-- Orphans under the keys that will be NOT VALID.
INSERT INTO order_lines (id, customer_id, product_id, store_id, coupon_id, quantity)
OVERRIDING SYSTEM VALUE VALUES
    (:n + 1, :p1 + 101, 1, 1, NULL, 1),
    (:n + 2, :p1 + 102, 2, 2, NULL, 1),
    (:n + 3, :p1 + 103, 3, 3, NULL, 1),
    (:n + 4, 4, :p2 + 101, 4, NULL, 1),
    (:n + 5, 5, :p2 + 102, NULL, NULL, 1);
ALTER TABLE order_lines ADD PRIMARY KEY (id);
ALTER TABLE order_lines ADD CONSTRAINT order_lines_customer_fk FOREIGN KEY (customer_id) REFERENCES customers NOT VALID;
ALTER TABLE order_lines ADD CONSTRAINT order_lines_product_fk FOREIGN KEY (product_id) REFERENCES products NOT VALID;
ALTER TABLE order_lines ADD CONSTRAINT order_lines_store_fk FOREIGN KEY (store_id) REFERENCES stores;
ALTER TABLE order_lines ADD CONSTRAINT order_lines_coupon_fk FOREIGN KEY (coupon_id) REFERENCES coupons;
-- Orphans under a validated key: FK triggers do not fire for a replica session.
SET session_replication_role = replica;
INSERT INTO order_lines (id, customer_id, product_id, store_id, coupon_id, quantity)
OVERRIDING SYSTEM VALUE VALUES
    (:n + 6, 6, 6, :p3 + 101, NULL, 1),
    (:n + 7, 7, 7, :p3 + 102, NULL, 1);
RESET session_replication_role;
SELECT setval(pg_get_serial_sequence('order_lines', 'id'), :n + 7) \g /dev/null
-- Hint bits and the visibility map set now, so the first measured scan does not write.
VACUUM (ANALYZE) customers, products, stores, coupons, order_lines;
SQL
}

antijoin_sql() { # COLUMN PARENT
    echo "SELECT count(*) FROM order_lines c WHERE c.$1 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM $2 p WHERE p.id = c.$1)"
}

# (a) the baseline: one psql per key, sequentially; the report sums them per repetition.
run_baseline() { # REP DBURL
    local fk col parent got
    for fk in "${FKS[@]}"; do
        col=${fk%%:*} parent=${fk#*:}
        measure "antijoin_$col" "$1" - - "$2" -- psql -X -q -At -d "$2" -c "$(antijoin_sql "$col" "$parent")"
        got=$(cat "$OUT/antijoin_$col.$1.out")
        [[ $got == "$(planted "$col")" ]] || die "the anti-join on $col counted $got, planted $(planted "$col")"
    done
}
run_validate() { # NAME POOL REP DBURL
    OK_EXIT=0,1 measure "$1" "$3" validate-data "$PLANTED" "$4" -- \
        env DATABASE_CONNECTION_POOL_SIZE="$2" "$BIN" --no-dotenv --format json validate --data --no-report
}

if [[ $PART != schema ]]; then
    DDB="${PREFIX}_data"
    createdb_fresh "$DDB"
    DURL=$(db_url "$DDB")
    log "generating order_lines with $ROWS rows and 4 parents (this takes a while for 10M rows)"
    t0=$(date +%s.%N)
    gen_data "$DURL"
    GEN_DATA_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    log "generated in ${GEN_DATA_S} s; $(psql -X -q -d "$DURL" -Atc "SELECT pg_size_pretty(pg_total_relation_size('order_lines'))") on disk"
    quiesce
    # Warm-up, not measured: the table into the page cache for everyone.
    for fk in "${FKS[@]}"; do psql -X -q -At -d "$DURL" -c "$(antijoin_sql "${fk%%:*}" "${fk#*:}")" >/dev/null; done
    for rep in $(seq 1 "$REPS"); do
        # Rotate the order every repetition so slow drift on a noisy machine hits all three.
        order=(baseline pool1 pool)
        for ((i = 0; i < (rep - 1) % 3; i++)); do order=("${order[@]:1}" "${order[0]}"); done
        for what in "${order[@]}"; do
            case $what in
                baseline) run_baseline "$rep" "$DURL" ;;
                pool1) run_validate validate_data_pool1 1 "$rep" "$DURL" ;;
                pool) run_validate validate_data_pool "$POOL" "$rep" "$DURL" ;;
            esac
        done
        measure connect_psql "$rep" - - "$DURL" -- psql -X -q -d "$DURL" -c 'SELECT 1'
    done
    # Where pgkeel's time went, from its own report of the last run.
    python3 - "$OUT/validate_data_pool1.$REPS.out" >&2 <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
checks = sorted(doc["checks"], key=lambda c: -c["duration_ms"])
print(f"[bench] validate --data (pool 1, last run): {len(checks)} checks, report duration_ms {doc['duration_ms']}")
for c in checks[:8]:
    print(f"[bench]   {c['duration_ms']:>7} ms  {c['name']}")
PY
    dropdb_now "$DDB"
fi

# --- schema -------------------------------------------------------------------------------------
if [[ $PART != data ]]; then
    SDB="${PREFIX}_schema"
    createdb_fresh "$SDB"
    SURL=$(db_url "$SDB")
    python3 "$HELPER" schema-sql "$TABLES" "$VIEWS" 0 "$TMP/schema.sql"
    log "creating $TABLES tables and $VIEWS views"
    t0=$(date +%s.%N)
    psql -X -q -v ON_ERROR_STOP=1 -d "$SURL" -f "$TMP/schema.sql" >/dev/null
    GEN_SCHEMA_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    psql -X -q -d "$SURL" -c "VACUUM ANALYZE pg_catalog.pg_class" >/dev/null 2>&1 || true
    quiesce
    # The expected schema is the database's own snapshot: validate must find no drift.
    SNAP="$TMP/snapshot.json"
    (cd "$TMP" && env -u DATABASE_URL "$BIN" --no-dotenv --database-url "$SURL" schema dump --format json -o "$SNAP")
    # Warm-up, not measured.
    pg_dump --schema-only -d "$SURL" >/dev/null
    for rep in $(seq 1 "$REPS"); do
        measure pg_dump_schema "$rep" - - "$SURL" -- pg_dump --schema-only -d "$SURL"
        measure schema_dump "$rep" - - "$SURL" -- "$BIN" --no-dotenv schema dump --format json
        OK_EXIT=0,1 measure validate_schema "$rep" validate-schema "$TABLES" "$SURL" -- \
            "$BIN" --no-dotenv --format json validate --schema --expected "$SNAP" --no-report
    done
    dropdb_now "$SDB"
fi

# --- report -------------------------------------------------------------------------------------
META="$TMP/meta.json"
write_meta "$META" "$LOAD_START" "$(printf '{"rows": %s, "planted_orphans": "%s", "pool": %s, "tables": %s, "views": %s, "generate_data_seconds": %s, "generate_schema_seconds": %s}' \
    "$([[ $PART != schema ]] && echo "$ROWS" || echo null)" "$PLANTED" "$POOL" "$TABLES" "$VIEWS" "$GEN_DATA_S" "$GEN_SCHEMA_S")"
mkdir -p "$BENCH/results"
python3 "$HELPER" report-validate "$SAMPLES" "$BENCH/results/validate-$(date +%Y-%m-%dT%H%M%S).json" "$META"
