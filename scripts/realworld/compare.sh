#!/usr/bin/env bash
# Applies a real project's migration folder twice, once with psql (the way the project's own tool
# would) and once with pgkeel, each into a fresh database, then compares the outcomes and the
# schema dumps. See README.md beside this file.
#
# Usage: compare.sh [options] <migrations-dir> <layout>
#   layout: drizzle | drizzle-v1 | prisma | golang-migrate | supabase | sqlx | dbmate | goose | flyway
#   options:
#     --prelude FILE        SQL applied to both databases before migrating (roles, schemas, extensions)
#     --until ID            stop after this migration (its tool id: drizzle tag, folder or file stem)
#     --native              always hand pgkeel a converted native folder, even for a layout it reads
#     --direct              accepted for old run lists: the original folder is the default now
#     --drizzle-single-tx   psql side: every drizzle migration in ONE transaction (drizzle-orm's
#                           migrate()); default is one transaction per migration file
#     --drop-stray          drizzle: hand pgkeel a copy of the folder without the .sql files the
#                           journal does not list (drizzle-orm ignores them; pgkeel builds before
#                           2026-12-02 07:16 refused the folder, later ones warn)
#     --strip-txctl         remove lines that are only BEGIN; / COMMIT; (what drizzle-orm tolerates
#                           and pgkeel refuses, e.g. a leading COMMIT;) from every file, for BOTH sides,
#                           to test the rest of the folder
#     --trim-tail           remove the `--` comment lines and blank lines that end a file, for BOTH
#                           sides (pgkeel before 2026-12-02 07:07 failed on an unterminated last statement
#                           followed by them)
#     --keep                keep both databases even when they agree
#     --label NAME          name for the run directory (default: derived from the folder)
# Environment: PGHOST (127.0.0.1) PGPORT (5432) PGUSER (postgres), PGKEEL (binary),
#              RW_RUNS (where run logs go, default /tmp/realworld/runs)
# Exit: 0 same outcome and same schema; 1 they differ; 2 usage or setup error.
set -uo pipefail

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
PGKEEL=${PGKEEL:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/pgkeel}
RW_RUNS=${RW_RUNS:-/tmp/realworld/runs}
RW_LIB=$(cd "$(dirname "$0")" && pwd)
export RW_LIB

die() { echo "compare.sh: $*" >&2; exit 2; }

prelude="" until="" native=0 direct=0 single_tx=0 keep=0 label="" drop_stray=0 strip_txctl=0 trim_tail=0
args=()
while (($#)); do
  case $1 in
    --prelude) prelude=${2:?}; shift 2 ;;
    --until) until=${2:?}; shift 2 ;;
    --native) native=1; shift ;;
    --direct) direct=1; shift ;;
    --drizzle-single-tx) single_tx=1; shift ;;
    --keep) keep=1; shift ;;
    --drop-stray) drop_stray=1; shift ;;
    --strip-txctl) strip_txctl=1; shift ;;
    --trim-tail) trim_tail=1; shift ;;
    --label) label=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,/^# Exit/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*) die "unknown option $1" ;;
    *) args+=("$1"); shift ;;
  esac
done
((${#args[@]} == 2)) || die "usage: compare.sh [options] <migrations-dir> <layout>"
dir=$(cd "${args[0]}" 2>/dev/null && pwd) || die "no such folder: ${args[0]}"
layout=${args[1]}
case $layout in
  drizzle|drizzle-v1|prisma|golang-migrate|supabase|sqlx|dbmate|goose|flyway) ;;
  *) die "unknown layout $layout" ;;
esac
[[ -z $prelude || -f $prelude ]] || die "no such prelude: $prelude"
[[ -n $prelude ]] && prelude=$(cd "$(dirname "$prelude")" && pwd)/$(basename "$prelude")
[[ -x $PGKEEL ]] || die "no pgkeel binary at $PGKEEL"
command -v python3 >/dev/null || die "python3 is needed"

[[ -n $label ]] || label=$(echo "$dir" | sed 's|^/tmp/realworld/||; s|[^A-Za-z0-9]\+|_|g; s|^_||; s|_$||')
work=$RW_RUNS/${label}_$$
rm -rf "$work"; mkdir -p "$work/psql" "$work/cwd"
echo "== $label: $dir ($layout)"
keel_version=$("$PGKEEL" --version 2>&1 | head -1)
keel_sha=$(sha256sum "$PGKEEL" | cut -c1-12)
echo "   pgkeel: $PGKEEL ($keel_version, sha256 $keel_sha…, built $(date -u -r "$PGKEEL" +%FT%TZ))"
echo "   run directory: $work"

# --- 1. the tool's order, the files psql runs, the folder pgkeel reads ------------------------
python3 - "$dir" "$layout" "$work" "$native" "$until" "$drop_stray" "$strip_txctl" "$direct" "$trim_tail" <<'PY' || die "could not read the folder (see above)"
import json, os, re, shutil, sys
sys.path.insert(0, os.environ["RW_LIB"])
from rwlib import native_name, psql_single, read

src, layout, work, force_native, until = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5]
drop_stray = sys.argv[6] == "1"
strip_txctl = sys.argv[7] == "1"
force_direct = sys.argv[8] == "1"
trim_tail = sys.argv[9] == "1"
stray = []
notes = []
def note(msg):
    notes.append(msg)
    print("   note: " + msg, file=sys.stderr)

# Each migration: tool id, the SQL text the tool runs (after picking the up section), whether the
# tool itself says "no transaction", and the path of the original file.
migs = []

def vkey(s):
    return int(s)

if layout == "drizzle":
    journal = json.loads(read(os.path.join(src, "meta", "_journal.json")))
    entries = sorted(journal["entries"], key=lambda e: e["idx"])
    in_journal = set()
    for e in entries:
        path = os.path.join(src, e["tag"] + ".sql")
        in_journal.add(e["tag"] + ".sql")
        migs.append(dict(id=e["tag"], path=path, sql=read(path), notx=False, bps=e.get("breakpoints", True)))
    stray = sorted(f for f in os.listdir(src) if f.endswith(".sql") and f not in in_journal
                   and not (f.endswith(".down.sql") and f[: -len(".down.sql")] + ".sql" in in_journal))
    for f in stray:
        note("not in the journal, drizzle-orm never runs it: " + f)
elif layout in ("drizzle-v1", "prisma"):
    for d in sorted(os.listdir(src)):
        p = os.path.join(src, d)
        if not os.path.isdir(p):
            continue
        path = os.path.join(p, "migration.sql")
        if not os.path.isfile(path):
            note("folder without migration.sql, skipped: " + d)
            continue
        if layout == "drizzle-v1" and not re.match(r"^\d{14}_", d):
            note("not a drizzle v1 folder name, skipped: " + d)
            continue
        migs.append(dict(id=d, path=path, sql=read(path), notx=False, bps=(layout == "drizzle-v1")))
else:
    files = sorted(f for f in os.listdir(src) if os.path.isfile(os.path.join(src, f)))
    picked = []
    for f in files:
        if layout == "golang-migrate":
            m = re.match(r"^(\d+)_(.*)\.up\.sql$", f)
            if not m:
                if not re.match(r"^(\d+)_(.*)\.down\.sql$", f):
                    note("not a golang-migrate up file, skipped: " + f)
                continue
            picked.append((int(m.group(1)), f, f[: -len(".up.sql")]))
        elif layout == "supabase":
            m = re.match(r"^(\d+)_(.*)\.sql$", f)
            if not m:
                note("not <version>_<name>.sql, the Supabase CLI skips it: " + f)
                continue
            picked.append((m.group(1), f, f[: -len(".sql")]))  # the CLI orders by file name
        elif layout == "sqlx":
            m = re.match(r"^(\d+)_(.*?)(\.up|\.down)?\.sql$", f)
            if not m:
                note("not <version>_<name>.sql, skipped: " + f)
                continue
            if m.group(3) == ".down":
                continue
            picked.append((int(m.group(1)), f, re.sub(r"(\.up)?\.sql$", "", f)))
        elif layout in ("dbmate", "goose"):
            m = re.match(r"^(\d+)_(.*)\.sql$", f)
            if not m:
                if not f.endswith(".go"):
                    note("not <version>_<name>.sql, skipped: " + f)
                continue
            picked.append((int(m.group(1)), f, f[: -len(".sql")]))
        elif layout == "flyway":
            m = re.match(r"^V(\d+(?:[._]\d+)*)__(.*)\.sql$", f)
            if not m:
                note("not a flyway versioned migration (V<ver>__<desc>.sql), skipped: " + f)
                continue
            ver = tuple(int(x) for x in re.split(r"[._]", m.group(1)))
            picked.append((ver, f, f[: -len(".sql")]))
    picked.sort(key=lambda t: (t[0], t[1]))
    for _, f, stem in picked:
        path = os.path.join(src, f)
        text = read(path)
        notx = False
        if layout == "dbmate":
            lines = text.splitlines(keepends=True)
            up, state = [], None
            for line in lines:
                s = line.strip()
                if s.startswith("-- migrate:up"):
                    state = "up"
                    if "transaction:false" in s:
                        notx = True
                    continue
                if s.startswith("-- migrate:down"):
                    state = "down"
                    continue
                if state == "up":
                    up.append(line)
            text = "".join(up)
        elif layout == "goose":
            lines = text.splitlines(keepends=True)
            up, state = [], None
            for line in lines:
                s = line.strip()
                if re.match(r"^--\s*\+goose\s+NO\s+TRANSACTION", s, re.I):
                    notx = True
                    continue
                if re.match(r"^--\s*\+goose\s+Up", s, re.I):
                    state = "up"
                    continue
                if re.match(r"^--\s*\+goose\s+Down", s, re.I):
                    state = "down"
                    continue
                if state == "up":
                    up.append(line)
            text = "".join(up)
        elif layout == "sqlx":
            if text.lstrip().startswith("-- no-transaction"):
                notx = True
        migs.append(dict(id=stem, path=path, sql=text, notx=notx, bps=False))

TXLINE = re.compile(r"^[ \t]*(BEGIN|START[ \t]+TRANSACTION|COMMIT|END[ \t]+TRANSACTION)[ \t]*;[ \t]*(--> statement-breakpoint)?[ \t]*$", re.I | re.M)
stripped = 0
if strip_txctl:
    for m in migs:
        new = TXLINE.sub(lambda mo: mo.group(2) or "", m["sql"])
        if new != m["sql"]:
            m["sql"] = new
            m["stripped"] = True
            stripped += 1
            note("transaction control lines removed (both sides): " + m["id"])

if trim_tail:
    for m in migs:
        lines = m["sql"].split("\n")
        while lines and (lines[-1].strip() == "" or lines[-1].lstrip().startswith("--")):
            lines.pop()
        new = "\n".join(lines) + "\n"
        if new.rstrip() != m["sql"].rstrip():
            m["sql"] = new
            m["stripped"] = True
            stripped += 1
            note("trailing comment lines removed (both sides): " + m["id"])

if until:
    ids = [m["id"] for m in migs]
    if until not in ids:
        print("compare.sh: --until %s: no such migration" % until, file=sys.stderr)
        sys.exit(1)
    migs = migs[: ids.index(until) + 1]

if not migs:
    print("compare.sh: no migrations found", file=sys.stderr)
    sys.exit(1)

# pgkeel's native name rule: NNNN_ then [a-z0-9_]+
def native_ok(stem):
    return re.match(r"^\d{4,}_[a-z0-9_]+$", stem) is not None

# pgkeel reads every one of these layouts as it is (since 2026-12-03); --native converts.
keel_mode = "direct"
if force_native or (stripped and layout != "drizzle"):
    keel_mode = "native"

keel_dir = src
if keel_mode == "direct" and layout == "drizzle" and ((drop_stray and stray) or stripped):
    what = []
    if drop_stray and stray:
        what.append("without %d stray file(s)" % len(stray))
    if stripped:
        what.append("%d file(s) without BEGIN/COMMIT lines" % stripped)
    keel_mode = "direct copy, " + ", ".join(what)
    keel_dir = os.path.join(work, "filtered")
    shutil.copytree(os.path.join(src, "meta"), os.path.join(keel_dir, "meta"))
    for f in os.listdir(src):
        if f.endswith(".sql") and not (drop_stray and f in stray):
            shutil.copy2(os.path.join(src, f), keel_dir)
    for m in migs:
        if m.get("stripped"):
            with open(os.path.join(keel_dir, m["id"] + ".sql"), "w", encoding="utf-8") as f:
                f.write(m["sql"])
if keel_mode == "native":
    keel_dir = os.path.join(work, "native")
    os.makedirs(keel_dir)
    width = max(4, len(str(len(migs))))
    for i, m in enumerate(migs, 1):
        kid = "%0*d_%s" % (width, i, native_name(m["id"]))
        body = m["sql"]
        if m["notx"]:
            body = "-- pgkeel:no-transaction\n" + body
        with open(os.path.join(keel_dir, kid + ".sql"), "w", encoding="utf-8") as f:
            f.write(body)
        m["keel_id"] = kid
else:
    for m in migs:
        m["keel_id"] = m["id"]

with open(os.path.join(work, "manifest.tsv"), "w") as man:
    for i, m in enumerate(migs, 1):
        sql = m["sql"]
        if layout in ("drizzle", "drizzle-v1") and m["bps"]:
            # drizzle-orm sends every chunk between `--> statement-breakpoint` markers as its own
            # query; a lone `;` after each chunk keeps psql from gluing two chunks together.
            chunks = sql.split("--> statement-breakpoint")
            sql = "".join(c + "\n;\n" for c in chunks)
        psql_file = os.path.join(work, "psql", "%04d.sql" % i)
        with open(psql_file, "w", encoding="utf-8") as f:
            f.write(sql)
        if m["notx"]:
            single, why = 0, "tool: no transaction"
        elif layout.startswith("drizzle"):
            # drizzle-orm holds a transaction open around every file: a file's own COMMIT
            # ends it and a trailing BEGIN is committed by it, which is what `psql -1` does.
            single, why = 1, ""
        else:
            single, why = psql_single(m["sql"])
        man.write("\t".join([str(i), m["id"], psql_file, str(single), m["keel_id"], why]) + "\n")

with open(os.path.join(work, "keel.env"), "w") as f:
    f.write("keel_dir='%s'\nkeel_mode='%s'\ncount=%d\n" % (keel_dir, keel_mode, len(migs)))
with open(os.path.join(work, "notes.txt"), "w") as f:
    f.write("".join(n + "\n" for n in notes))
PY
# shellcheck disable=SC1091
source "$work/keel.env"
echo "   $count migrations; pgkeel reads: $keel_dir ($keel_mode)"
while IFS=$'\t' read -r _ id _ single _ why; do
  [[ $single == 0 ]] && echo "   psql runs $id without -1: $why"
done < "$work/manifest.tsv"

# --- 2. two fresh databases --------------------------------------------------------------------
n=0
while :; do
  n=$((n + 1))
  db_psql=rw_psql_$$_$n db_keel=rw_keel_$$_$n
  exists=$(psql -X -At -d postgres -c "select count(*) from pg_database where datname in ('$db_psql','$db_keel')") \
    || die "cannot reach PostgreSQL at $PGHOST:$PGPORT as $PGUSER"
  [[ $exists == 0 ]] && break
done
createdb "$db_psql" && createdb "$db_keel" || die "createdb failed"
cleanup_dbs() { dropdb --if-exists "$db_psql"; dropdb --if-exists "$db_keel"; }
echo "   databases: $db_psql (psql) $db_keel (pgkeel)"

if [[ -n $prelude ]]; then
  for db in "$db_psql" "$db_keel"; do
    if ! psql -X -v ON_ERROR_STOP=1 -q -d "$db" -f "$prelude" >"$work/prelude_$db.log" 2>&1; then
      cat "$work/prelude_$db.log" >&2; cleanup_dbs; die "prelude failed on $db"
    fi
  done
fi

# --- 3. psql -----------------------------------------------------------------------------------
psql_ok=1 psql_failed_at=""
t0=$(date +%s)
if [[ $layout == drizzle && $single_tx == 1 ]]; then
  { echo "BEGIN;"; while IFS=$'\t' read -r _ _ f _ _ _; do cat "$f"; echo; done < "$work/manifest.tsv"; echo "COMMIT;"; } > "$work/psql/all.sql"
  if ! psql -X -v ON_ERROR_STOP=1 -q -d "$db_psql" -f "$work/psql/all.sql" >"$work/psql.out" 2>"$work/psql.err"; then
    psql_ok=0 psql_failed_at="(the single transaction)"
  fi
else
  : >"$work/psql.out"; : >"$work/psql.err"
  while IFS=$'\t' read -r i id f single _ _; do
    flags=(-X -v ON_ERROR_STOP=1 -q -d "$db_psql")
    [[ $single == 1 ]] && flags+=(-1)
    echo "### $i $id" >>"$work/psql.err"
    if ! psql "${flags[@]}" -f "$f" >>"$work/psql.out" 2>>"$work/psql.err"; then
      psql_ok=0 psql_failed_at=$id
      break
    fi
  done < "$work/manifest.tsv"
fi
echo "   psql:   $( ((psql_ok)) && echo ok || echo "FAILED at $psql_failed_at") ($(( $(date +%s) - t0 ))s)"
if ((!psql_ok)); then
  grep -v '^###' "$work/psql.err" | grep -E 'ERROR|FATAL|error' | head -5 | sed 's/^/           /'
fi

# --- 4. pgkeel ---------------------------------------------------------------------------------
keel_args=(migrate --migrations "$keel_dir")
if [[ -n $until && $keel_mode == direct* ]]; then
  keel_args+=(--target "$(tail -1 "$work/manifest.tsv" | cut -f5)")
fi
t0=$(date +%s)
(cd "$work/cwd" && DATABASE_URL="postgresql://$PGUSER@$PGHOST:$PGPORT/$db_keel" "$PGKEEL" "${keel_args[@]}" \
  >"$work/pgkeel.out" 2>"$work/pgkeel.err")
keel_rc=$?
echo "   pgkeel: $( ((keel_rc == 0)) && echo ok || echo "FAILED, exit $keel_rc") ($(( $(date +%s) - t0 ))s): pgkeel ${keel_args[*]}"
if ((keel_rc != 0)); then
  sed 's/^/           /' "$work/pgkeel.err" | head -40
fi
# A second run must apply nothing and succeed.
rerun_ok=1
if ((keel_rc == 0)); then
  (cd "$work/cwd" && DATABASE_URL="postgresql://$PGUSER@$PGHOST:$PGPORT/$db_keel" "$PGKEEL" "${keel_args[@]}" \
    >"$work/pgkeel2.out" 2>"$work/pgkeel2.err")
  rc2=$?
  if ((rc2 != 0)) || ! grep -q -E "nothing to do|applied 0 migration" "$work/pgkeel2.out" "$work/pgkeel2.err"; then
    rerun_ok=0
    echo "   pgkeel second run: NOT a no-op (exit $rc2)"
    sed 's/^/           /' "$work/pgkeel2.err" "$work/pgkeel2.out" | head -20
  fi
fi

# --- 5. compare --------------------------------------------------------------------------------
has_drizzle_schema=$(psql -X -At -d "$db_psql" -c "select count(*) from pg_namespace where nspname='drizzle'")
dump_opts=(--schema-only --no-owner --no-privileges
  --exclude-table='*.__drizzle_migrations*' --exclude-table='*.__pgkeel*')
[[ $has_drizzle_schema == 0 ]] && dump_opts+=(--exclude-schema=drizzle)
normalize() { grep -v -E '^\\(un)?restrict |^-- Dumped (from|by) '; }
pg_dump "${dump_opts[@]}" -d "$db_psql" | normalize >"$work/schema_psql.sql" || die "pg_dump $db_psql failed"
pg_dump "${dump_opts[@]}" -d "$db_keel" | normalize >"$work/schema_keel.sql" || die "pg_dump $db_keel failed"

schema_same=1
if ! diff -u --label "psql ($db_psql)" --label "pgkeel ($db_keel)" \
    "$work/schema_psql.sql" "$work/schema_keel.sql" >"$work/schema.diff"; then
  schema_same=0
fi

outcome_same=$(( (psql_ok == 1) == (keel_rc == 0) ))
if ((schema_same)); then
  echo "   schema: SAME ($(grep -c -E '^CREATE ' "$work/schema_psql.sql") CREATE statements)"
else
  echo "   schema: DIFFERS ($(grep -c '^[-+][^-+]' "$work/schema.diff") lines), $work/schema.diff:"
  head -80 "$work/schema.diff" | sed 's/^/     /'
fi

verdict=SAME
if ((!psql_ok)) && ((keel_rc != 0)) && ((schema_same)); then
  verdict="SAME (both failed; psql at $psql_failed_at)"
fi
if ((!outcome_same || !schema_same || !rerun_ok)); then
  verdict=DIFFERENT
fi
if ((!psql_ok)) && ((keel_rc == 0)); then
  verdict="DIFFERENT (psql failed at $psql_failed_at, pgkeel succeeded: check the prelude/ordering first)"
fi
printf 'RESULT %s: %s  [psql=%s pgkeel=%s rerun=%s schema=%s binary=%s]\n' "$label" "$verdict" \
  "$( ((psql_ok)) && echo ok || echo fail)" "$( ((keel_rc == 0)) && echo ok || echo "fail($keel_rc)")" \
  "$( ((rerun_ok)) && echo ok || echo fail)" "$( ((schema_same)) && echo same || echo differs)" "$keel_sha"
echo "$verdict" >"$work/verdict"

if [[ $verdict == SAME* ]] && ((!keep)); then
  cleanup_dbs
  exit 0
fi
echo "   kept databases: $db_psql $db_keel"
[[ $verdict == SAME* ]] && exit 0
exit 1
