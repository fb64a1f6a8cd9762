#!/usr/bin/env bash
# Round-trips every migration of a real project's golang-migrate folder twice: once with psql and
# pg_dump (the ground truth) and once with `pgkeel test`, then compares the verdicts migration by
# migration: does pgkeel judge every migration, and does it name exactly the down files that are
# genuinely broken?
#
# Usage: roundtrip.sh [options] <golang-migrate-dir>
#   The folder holds <version>_<name>.up.sql / <version>_<name>.down.sql. pgkeel is handed a
#   converted native copy (0001_<name>.sql + 0001_<name>.down.sql, in version order), made the
#   way compare.sh's "native copy" is.
#   psql side, in one database: for each migration i, dump A(i-1), apply up_i (psql -1, or without
#   -1 when the file has CONCURRENTLY or its own BEGIN/COMMIT), dump B_i, apply down_i, dump and
#   compare with A(i-1) (down: same / colorder / differs / error), apply up_i again if the down
#   succeeded, dump and compare with B_i (reapply: same / colorder / differs / error / not-run).
#   When the round trip leaves the database other than B_i, it is recreated from a second
#   database that only ever gets the ups (createdb -T), so one broken down file does not spill
#   into the verdicts of the migrations after it (pgkeel repairs or rebuilds its scratch database
#   in that case too). Dumps are compared after dropping comment, SET / set_config, blank and
#   \restrict lines; a difference that is only the order of the lines in CREATE TABLE blocks is
#   "colorder" (pgkeel: a warning).
#   options:
#     --prelude FILE   SQL applied to both sides first (psql: before migration 1; pgkeel: as an
#                      extra migration 0000_prelude.sql without a down file, left out of the table)
#     --until VERSION  stop after this golang-migrate version
#     --label NAME     run directory /tmp/realworld/roundtrip/NAME (default: derived from the folder)
#     --reuse-psql     do not run the psql side again: reuse NAME's psql.json
#     --reuse-pgkeel   do not run pgkeel again: reuse NAME's pgkeel.json
#     --keep           keep the databases
# Environment: PGHOST (127.0.0.1) PGPORT (5432) PGUSER (postgres), PGKEEL (binary, default
#              target/debug/pgkeel of this checkout), RT_RUNS (/tmp/realworld/roundtrip)
# Output: a table (id, psql down/reapply, pgkeel verdict/rollback/reapply) and a summary; the run
#         directory keeps native/ (pgkeel's folder), manifest.json, psql.json, pgkeel.json,
#         diffs/ (the psql side's dump diffs) and compare.json.
# Exit: 0 pgkeel and psql agree on every migration; 1 they do not; 2 usage or setup error.
set -uo pipefail

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
PGKEEL=${PGKEEL:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/pgkeel}
RT_RUNS=${RT_RUNS:-/tmp/realworld/roundtrip}
RW_LIB=$(cd "$(dirname "$0")" && pwd)
export RW_LIB

die() { echo "roundtrip.sh: $*" >&2; exit 2; }

prelude="" until="" label="" keep=0 reuse_psql=0 reuse_keel=0
args=()
while (($#)); do
  case $1 in
    --prelude) prelude=${2:?}; shift 2 ;;
    --until) until=${2:?}; shift 2 ;;
    --label) label=${2:?}; shift 2 ;;
    --reuse-psql) reuse_psql=1; shift ;;
    --reuse-pgkeel) reuse_keel=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^# Exit/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*) die "unknown option $1" ;;
    *) args+=("$1"); shift ;;
  esac
done
((${#args[@]} == 1)) || die "usage: roundtrip.sh [options] <golang-migrate-dir>"
dir=$(cd "${args[0]}" 2>/dev/null && pwd) || die "no such folder: ${args[0]}"
[[ -z $prelude || -f $prelude ]] || die "no such prelude: $prelude"
[[ -n $prelude ]] && prelude=$(cd "$(dirname "$prelude")" && pwd)/$(basename "$prelude")
[[ -x $PGKEEL ]] || die "no pgkeel binary at $PGKEEL"
command -v python3 >/dev/null || die "python3 is needed"
for t in psql pg_dump createdb dropdb; do command -v $t >/dev/null || die "$t is needed"; done

[[ -n $label ]] || label=$(echo "$dir" | sed 's|^/tmp/realworld/||; s|[^A-Za-z0-9]\+|_|g; s|^_||; s|_$||')
work=$RT_RUNS/$label
mkdir -p "$work"
((reuse_psql)) || rm -rf "$work/psql.json" "$work/diffs" "$work/psql.log"
((reuse_keel)) || rm -f "$work/pgkeel.json" "$work/pgkeel.err"
rm -rf "$work/native"; mkdir -p "$work/native" "$work/diffs" "$work/cwd"
dbtag=$(echo "$label" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9_]/_/g' | cut -c1-40)
db_main=rt_${dbtag}_psql db_ref=rt_${dbtag}_ref db_keel=rt_${dbtag}_keel
echo "== $label: $dir (golang-migrate)"
echo "   pgkeel: $PGKEEL ($("$PGKEEL" --version 2>&1 | head -1), sha256 $(sha256sum "$PGKEEL" | cut -c1-12)…)"
echo "   server: $(psql -X -At -d postgres -c 'show server_version' 2>&1) at $PGHOST:$PGPORT; run directory: $work"

# --- 1. the folder, in version order; pgkeel's native copy -------------------------------------
python3 - "$dir" "$work" "$until" "$prelude" <<'PY' || die "could not read the folder (see above)"
import json, os, re, sys
sys.path.insert(0, os.environ["RW_LIB"])
from rwlib import native_name, psql_single as single, read, strip_comments
src, work, until, prelude = sys.argv[1:5]

ups, downs = {}, {}
for f in sorted(os.listdir(src)):
    m = re.match(r"^(\d+)_(.*)\.(up|down)\.sql$", f)
    if not m:
        if f.endswith(".sql"):
            print("   note: not a golang-migrate file, skipped: " + f, file=sys.stderr)
        continue
    ver = int(m.group(1))
    (ups if m.group(3) == "up" else downs)[ver] = (f, m.group(2))
for ver in sorted(set(downs) - set(ups)):
    print("   note: down file without an up file, skipped: " + downs[ver][0], file=sys.stderr)
versions = sorted(ups)
if until:
    if int(until) not in ups:
        print("roundtrip.sh: --until %s: no such version" % until, file=sys.stderr); sys.exit(1)
    versions = [v for v in versions if v <= int(until)]
if not versions:
    print("roundtrip.sh: no migrations found", file=sys.stderr); sys.exit(1)


native = os.path.join(work, "native")
width = max(4, len(str(len(versions))))
if prelude:
    with open(os.path.join(native, "%s_prelude.sql" % ("0" * width)), "w", encoding="utf-8") as f:
        f.write(read(prelude))
migs = []
for i, ver in enumerate(versions, 1):
    upf, name = ups[ver]
    kid = "%0*d_%s" % (width, i, native_name(name, 60))
    up = read(os.path.join(src, upf))
    s_up, why_up = single(up)
    with open(os.path.join(native, kid + ".sql"), "w", encoding="utf-8") as f:
        f.write(up)
    e = dict(index=i, version=ver, id=upf[: -len(".up.sql")], keel_id=kid,
             up=os.path.join(src, upf), up_single=s_up, up_why=why_up, down=None)
    if ver in downs:
        downf = downs[ver][0]
        down = read(os.path.join(src, downf))
        s_down, why_down = single(down)
        with open(os.path.join(native, kid + ".down.sql"), "w", encoding="utf-8") as f:
            f.write(down)
        e.update(down=os.path.join(src, downf), down_single=s_down, down_why=why_down,
                 down_empty=not strip_comments(down).strip().strip(";").strip())
    migs.append(e)
with open(os.path.join(work, "manifest.json"), "w") as f:
    json.dump(dict(source=src, prelude=prelude or None, migrations=migs), f, indent=1)
nd = sum(1 for m in migs if m["down"])
print("   %d migrations, %d with a down file; pgkeel reads %s" % (len(migs), nd, native))
for m in migs:
    if not m["up_single"]:
        print("   psql runs %s.up without -1: %s" % (m["id"], m["up_why"]))
    if m["down"] and not m["down_single"]:
        print("   psql runs %s.down without -1: %s" % (m["id"], m["down_why"]))
    if m["down"] and m["down_empty"]:
        print("   note: empty down file: %s" % m["id"])
PY

cleanup_dbs() { for d in "$db_main" "$db_ref" "$db_keel"; do dropdb --if-exists "$d" 2>/dev/null; done; }
psql -X -At -d postgres -c 'select 1' >/dev/null 2>&1 || die "cannot reach PostgreSQL at $PGHOST:$PGPORT as $PGUSER"

# --- 2. psql: the ground truth ---------------------------------------------------------------
if ((reuse_psql)) && [[ -f $work/psql.json ]]; then
  echo "   psql:   reusing $work/psql.json"
else
  dropdb --if-exists "$db_main" 2>/dev/null && dropdb --if-exists "$db_ref" 2>/dev/null || die "dropdb failed"
  createdb "$db_main" && createdb "$db_ref" || die "createdb failed"
  t0=$(date +%s)
  python3 - "$work" "$db_main" "$db_ref" <<'PY'
import difflib, json, os, re, subprocess, sys, time
work, db_main, db_ref = sys.argv[1:4]
man = json.load(open(os.path.join(work, "manifest.json")))
log = open(os.path.join(work, "psql.log"), "w")

def psql(db, path, single):
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", path]
    if single:
        args.insert(1, "-1")
    p = subprocess.run(args, capture_output=True, text=True)
    log.write("### psql %s %s -f %s: exit %d\n%s%s" % (db, "-1" if single else "", path, p.returncode, p.stdout, p.stderr))
    if p.returncode != 0:
        errs = [l for l in p.stderr.splitlines() if "ERROR" in l or "FATAL" in l]
        return (errs[0] if errs else p.stderr.strip()[:300] or "exit %d" % p.returncode)
    return None

HEADER = re.compile(r"^-- Name: (.*?); Type: (.*?); Schema: (.*?);")
def dump(db):
    p = subprocess.run(["pg_dump", "--schema-only", "--no-owner", "-d", db], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("pg_dump %s failed: %s" % (db, p.stderr))
    # Objects: the chunks between pg_dump's "-- Name: ...; Type: ...; Schema: ..." headers.
    objs, cur, name = [], [], "(head)"
    for line in p.stdout.splitlines():
        h = HEADER.match(line)
        if h:
            if cur:
                objs.append((name, tuple(cur)))
            name, cur = "%s %s.%s" % (h.group(2), h.group(3), h.group(1)), []
            continue
        s = line.rstrip()
        if (not s.strip() or s.startswith("--") or s.startswith("SET ")
                or s.startswith("SELECT pg_catalog.set_config") or re.match(r"^\\(un)?restrict\b", s)):
            continue
        cur.append(s)
    if cur:
        objs.append((name, tuple(cur)))
    return objs

def colcanon(body):
    # A CREATE TABLE block with its column lines sorted (a trailing comma is not part of a line).
    if not body or not re.match(r"^CREATE (UNLOGGED )?TABLE ", body[0]):
        return body
    try:
        end = max(i for i, l in enumerate(body) if l.startswith(")"))
    except ValueError:
        return body
    cols = sorted(l.rstrip(",") for l in body[1:end])
    return body[:1] + tuple(cols) + body[end:]

def compare(a, b, tag):
    """same / colorder / differs, the objects that differ and a diff file."""
    if a == b:
        return "same", [], None
    if sorted(a) == sorted(b):
        return "same", ["(only pg_dump's order of objects)"], None
    ca = sorted((n, colcanon(x)) for n, x in a)
    cb = sorted((n, colcanon(x)) for n, x in b)
    da, db_ = dict(a), dict(b)
    names = sorted(set(da) | set(db_))
    changed = []
    for n in names:
        if da.get(n) != db_.get(n):
            what = "missing" if n not in db_ else "extra" if n not in da else "changed"
            changed.append("%s %s" % (what, n))
    lines_a = [l for n, x in a for l in ("-- " + n,) + x]
    lines_b = [l for n, x in b for l in ("-- " + n,) + x]
    path = os.path.join(work, "diffs", tag + ".diff")
    with open(path, "w") as f:
        f.writelines(difflib.unified_diff([l + "\n" for l in lines_a], [l + "\n" for l in lines_b],
                                          "expected", "got", n=2))
    if ca == cb:
        return "colorder", changed, path
    return "differs", changed, path

prelude = man.get("prelude")
if prelude:
    for db in (db_main, db_ref):
        e = psql(db, prelude, 1)
        if e:
            sys.exit("prelude failed on %s: %s" % (db, e))
results = []
A = dump(db_main)
t_start = time.time()
restores = 0

def stage(r, name, path, single, ref, index):
    """Runs one step of a round trip (`down`, `reapply`) on the main database and records its
    verdict in r against the dump `ref` should equal; returns the dump, None when psql failed."""
    e = psql(db_main, path, single)
    if e:
        r.update({name: "error", name + "_error": e})
        return None
    now = dump(db_main)
    v, changed, diff = compare(ref, now, "%04d_%s" % (index, name))
    r[name] = v
    if changed:
        r[name + "_changed"] = changed
    if diff:
        r[name + "_diff"] = diff
    return now

for m in man["migrations"]:
    r = dict(id=m["id"], keel_id=m["keel_id"], up="ok", down="not-run", reapply="not-run")
    e = psql(db_main, m["up"], m["up_single"])
    if e:
        r.update(up="error", up_error=e)
        results.append(r)
        print("   psql:   %s up FAILED: %s (the migrations after it are not run)" % (m["id"], e), file=sys.stderr)
        break
    e = psql(db_ref, m["up"], m["up_single"])
    if e:
        sys.exit("the ups-only database failed where the first did not: %s: %s" % (m["id"], e))
    B = dump(db_main)
    if not m["down"]:
        r.update(down="none")
        results.append(r); A = B
        continue
    C = None
    if stage(r, "down", m["down"], m["down_single"], A, m["index"]) is not None:
        C = stage(r, "reapply", m["up"], m["up_single"], B, m["index"])
    # Back to B_i unless the round trip left exactly it (the ups-only database is B_i).
    now = C if r["reapply"] in ("same", "colorder") else dump(db_main)
    if now != B:
        for args in (["dropdb", db_main], ["createdb", "-T", db_ref, db_main]):
            p = subprocess.run(args, capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit("%s failed: %s" % (" ".join(args), p.stderr))
        restores += 1
        r["restored"] = True
    results.append(r)
    A = B
    if m["index"] % 25 == 0:
        print("   psql:   %d/%d (%ds)" % (m["index"], len(man["migrations"]), time.time() - t_start), file=sys.stderr)
json.dump(dict(migrations=results, restores=restores, seconds=round(time.time() - t_start, 1)),
          open(os.path.join(work, "psql.json"), "w"), indent=1)
PY
  rc=$?
  ((rc == 0)) || { cleanup_dbs; die "the psql side failed (exit $rc), see $work/psql.log"; }
  echo "   psql:   done in $(( $(date +%s) - t0 ))s"
fi

# --- 3. pgkeel test ----------------------------------------------------------------------------
if ((reuse_keel)) && [[ -f $work/pgkeel.json ]]; then
  echo "   pgkeel: reusing $work/pgkeel.json"
else
  dropdb --if-exists "$db_keel" 2>/dev/null; createdb "$db_keel" || die "createdb $db_keel failed"
  keel_args=(test --migrations "$work/native" --format json --no-report)
  t0=$(date +%s)
  (cd "$work/cwd" && DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$db_keel" "$PGKEEL" "${keel_args[@]}" \
    >"$work/pgkeel.json" 2>"$work/pgkeel.err")
  keel_rc=$?
  echo "   pgkeel: exit $keel_rc in $(( $(date +%s) - t0 ))s: DATABASE_URL=postgres://$PGUSER@$PGHOST:$PGPORT/$db_keel pgkeel ${keel_args[*]}"
  echo "$keel_rc" >"$work/pgkeel.rc"
  if ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$work/pgkeel.json" 2>/dev/null; then
    sed 's/^/           /' "$work/pgkeel.err" | tail -20
    ((keep)) || cleanup_dbs
    die "pgkeel wrote no JSON report (see $work/pgkeel.err)"
  fi
fi
((keep)) || cleanup_dbs

# --- 4. compare --------------------------------------------------------------------------------
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
man = json.load(open(os.path.join(work, "manifest.json")))
ps = json.load(open(os.path.join(work, "psql.json")))
kj = json.load(open(os.path.join(work, "pgkeel.json")))
pk = {m["id"]: m for m in kj.get("migrations", [])}
pr = {r["keel_id"]: r for r in ps["migrations"]}

def psql_class(r):
    if r is None:
        return "not-run"
    if r["up"] == "error":
        return "fail"
    if r["down"] == "none":
        return "skipped"
    if "error" in (r["down"], r["reapply"]) or "differs" in (r["down"], r["reapply"]):
        return "fail"
    if "colorder" in (r["down"], r["reapply"]):
        return "warning"
    return "pass"

def keel_class(k):
    if k is None:
        return "missing"
    return k.get("verdict", "missing")

def psql_msg(r):
    if r is None:
        return "not run (an earlier up failed)"
    parts = []
    for stage in ("up", "down", "reapply"):
        if r.get(stage + "_error"):
            parts.append("%s error: %s" % (stage, r[stage + "_error"]))
        if r.get(stage) in ("differs", "colorder"):
            ch = r.get(stage + "_changed", [])
            parts.append("%s %s: %s%s (%s)" % (stage, r[stage], "; ".join(ch[:6]), " …" if len(ch) > 6 else "",
                                              r.get(stage + "_diff")))
    return " | ".join(parts) or "down same, reapply same"

def keel_msg(k):
    if k is None:
        return "(no entry in pgkeel's JSON)"
    parts = [p for p in (k.get("error"), k.get("note")) if p]
    parts += ["warning: " + w for w in k.get("warnings", [])]
    return " | ".join(parts) or "rollback %s, reapply %s" % (k.get("rollback"), k.get("reapply"))

rows, dis, counts, pcounts = [], [], {}, {}
stage_mismatch = []
print()
print("%-58s %-9s %-9s | %-8s %-8s %-8s %s" % ("migration (pgkeel id)", "psql.down", "reapply", "pgkeel", "rollback", "reapply", "agree"))
for m in man["migrations"]:
    kid = m["keel_id"]
    r, k = pr.get(kid), pk.get(kid)
    pc, kc = psql_class(r), keel_class(k)
    counts[kc] = counts.get(kc, 0) + 1
    pcounts[pc] = pcounts.get(pc, 0) + 1
    agree = pc == kc
    if agree and pc == "fail" and r and k:
        # Same verdict: is it the same stage? (psql: down error/differs vs pgkeel: rollback failed)
        p_stage = "down" if r["down"] in ("error", "differs") else "reapply" if r["reapply"] in ("error", "differs") else "up"
        k_stage = "up" if k.get("rollback") == "not-run" else "down" if k.get("rollback") == "failed" else "reapply"
        if p_stage != k_stage:
            stage_mismatch.append((kid, p_stage, k_stage))
    print("%-58s %-9s %-9s | %-8s %-8s %-8s %s" % (
        kid[:58], (r or {}).get("down", "-"), (r or {}).get("reapply", "-"), kc,
        (k or {}).get("rollback", "-"), (k or {}).get("reapply", "-"), "yes" if agree else "NO"))
    if not agree:
        dis.append(dict(id=kid, source=m["id"], psql=pc, pgkeel=kc, psql_says=psql_msg(r), pgkeel_says=keel_msg(k)))
extra = sorted(set(pk) - {m["keel_id"] for m in man["migrations"]} - {i for i in pk if i.endswith("_prelude")})
n = len(man["migrations"])
judged = sum(v for c, v in counts.items() if c in ("pass", "warning", "fail"))
print()
print("SUMMARY %s" % os.path.basename(work))
print("  migrations: %d (with a down file: %d)" % (n, sum(1 for m in man["migrations"] if m["down"])))
print("  psql:   %s; broken round trips: %d; restores: %d; %ss" % (
    ", ".join("%s %d" % kv for kv in sorted(pcounts.items())), pcounts.get("fail", 0), ps.get("restores", 0), ps.get("seconds")))
print("  pgkeel: %s; judged (pass/warning/fail): %d of %d; report ok=%s idempotent=%s duration %.1fs" % (
    ", ".join("%s %d" % kv for kv in sorted(counts.items())), judged, n, kj.get("ok"), kj.get("idempotent"),
    (kj.get("duration_ms") or 0) / 1000))
if kj.get("idempotency_error"):
    print("  pgkeel idempotency: " + kj["idempotency_error"])
if extra:
    print("  pgkeel ids not in the folder: " + ", ".join(extra))
print("  agree: %d of %d; disagree: %d" % (n - len(dis), n, len(dis)))
for kid, p, k in stage_mismatch:
    print("  same verdict, other stage: %s (psql: %s, pgkeel: %s)" % (kid, p, k))
for d in dis:
    print("  DISAGREE %s (%s): psql=%s pgkeel=%s" % (d["id"], d["source"], d["psql"], d["pgkeel"]))
    print("      psql:   " + d["psql_says"])
    print("      pgkeel: " + d["pgkeel_says"])
json.dump(dict(count=n, psql=pcounts, pgkeel=counts, disagreements=dis, stage_mismatch=stage_mismatch),
          open(os.path.join(work, "compare.json"), "w"), indent=1)
sys.exit(1 if dis or extra else 0)
PY
