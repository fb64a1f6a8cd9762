#!/usr/bin/env python3
"""Helper for the bench/*.sh scripts: generation, timing, output checks, reports.

Subcommands (used by the scripts; not meant to be called by hand):

  gen DIR N DRIVER        write N native migrations into DIR and the psql driver script DRIVER
  schema-sql TABLES VIEWS CHANGED OUT
                          write the schema.sh/validate.sh schema (TABLES tables, VIEWS views;
                          CHANGED=1 for the drifted copy) as one SQL transaction to OUT
  url URL DBNAME          print URL with its database replaced by DBNAME
  time OUT [--ok-exit CODES] -- CMD...
                          run CMD (stdout > OUT, stderr > OUT.err), print the wall time in
                          seconds; exit codes other than 0 (or the comma-separated CODES) fail
  check KIND FILE N       sanity-check a command's output (KIND: migrate, noop, status, validate,
                          validate-data, validate-schema, test, test-rt,
                          lint)
  report SAMPLES OUT_JSON META_JSON
                          print the migrate results table and write the JSON results
  report-validate SAMPLES OUT_JSON META_JSON
  report-testsuite SAMPLES OUT_JSON META_JSON
                          the same for bench/validate.sh and bench/testsuite.sh
"""

import json
import os
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit


def gen(directory, n, driver):
    """N native pgkeel migrations, each one table chained to the previous one by a FK."""
    n = int(n)
    os.makedirs(directory, exist_ok=True)
    lines = []
    for i in range(1, n + 1):
        t = f"table_{i:04d}"
        fk = ""
        if i > 1:
            fk = f"    prev_id     bigint REFERENCES table_{i - 1:04d} (id),\n"
        sql = (
            f"-- Migration {i}: {t}\n"
            f"CREATE TABLE {t} (\n"
            f"    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
            f"    name        text NOT NULL,\n"
            f"    quantity    integer NOT NULL DEFAULT 0,\n"
            f"    price       numeric(12, 2) NOT NULL DEFAULT 0,\n"
            f"    created_at  timestamptz NOT NULL DEFAULT now(),\n"
            f"    active      boolean NOT NULL DEFAULT true,\n"
            f"{fk}"
            f"    CONSTRAINT {t}_price_check CHECK (price >= 0 AND quantity >= 0)\n"
            f");\n"
            f"\n"
            f"CREATE INDEX {t}_created_at_idx ON {t} (created_at);\n"
        )
        path = os.path.join(directory, f"{i:04d}_{t}.sql")
        with open(path, "w") as f:
            f.write(sql)
        # The floor: what psql does with the same files, one transaction per file.
        lines.append(f"BEGIN;\n\\i {path}\nCOMMIT;\n")
    with open(driver, "w") as f:
        f.write("".join(lines))


def schema_sql(tables, views, changed, out):
    """TABLES tables (10 columns, 2 indexes, an FK to the previous table each) and VIEWS views.

    CHANGED=1 adds a column to every 10th table and widens every 10th index (schema.sh's drift).
    """
    n, v, changed = int(tables), int(views), changed == "1"
    lines = ["BEGIN;"]
    for i in range(n):
        # One transaction of 2000 tables needs more lock slots than the default
        # max_locks_per_transaction (64) x max_connections (100) gives: "out of shared memory".
        if i and i % 100 == 0:
            lines.append("COMMIT;\nBEGIN;")
        ref = f"REFERENCES t{i-1:04d} (id)" if i else ""
        extra = ", extra_col text" if changed and i % 10 == 0 else ""
        lines.append(f"""CREATE TABLE t{i:04d} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, parent_id bigint {ref},
  name text NOT NULL, qty integer NOT NULL DEFAULT 0, price numeric(12,2) NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(), active boolean NOT NULL DEFAULT true,
  note varchar(200), payload jsonb, code char(8){extra});""")
        lines.append(f"CREATE INDEX t{i:04d}_created_at ON t{i:04d} (created_at);")
        idx = "(name, qty)" if changed and i % 10 == 5 else "(name)"
        lines.append(f"CREATE INDEX t{i:04d}_name ON t{i:04d} {idx};")
    for j in range(v):
        t = j * (n // v)
        lines.append(f"CREATE VIEW v{j:04d} AS SELECT a.id, a.name, b.name AS parent_name FROM t{t+1:04d} a JOIN t{t:04d} b ON b.id = a.parent_id WHERE a.active;")
    lines.append("COMMIT;")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


def url(base, dbname):
    p = urlsplit(base)
    return urlunsplit((p.scheme, p.netloc, "/" + dbname, p.query, p.fragment))


def time_cmd(out, cmd, ok=(0,)):
    """Wall time of CMD with a monotonic high-resolution clock (fork/exec included)."""
    with open(out, "wb") as o, open(out + ".err", "wb") as e:
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        t1 = time.perf_counter()
    if rc not in ok:
        sys.stderr.write(f"command failed (exit {rc}): {' '.join(cmd)}\n")
        with open(out + ".err", "rb") as e:
            sys.stderr.write(e.read().decode(errors="replace")[-4000:])
        with open(out, "rb") as o:
            sys.stderr.write(o.read().decode(errors="replace")[-4000:])
        sys.exit(rc)
    print(f"{t1 - t0:.6f}")


def check(kind, path, n):
    """Fails loudly when a command did not do what the benchmark assumes."""
    n_raw = n
    n = int(n) if n.isdigit() else 0
    with open(path) as f:
        doc = json.load(f)

    def need(cond, what):
        if not cond:
            sys.exit(f"check {kind} failed: {what}\n{json.dumps(doc)[:2000]}")

    if kind == "validate-data":
        # N = the orphan rows planted, per FK column: "customer_id=3,product_id=2,...".
        want = dict((k, int(v)) for k, v in (x.split("=") for x in n_raw.split(",")))
        got = {}
        for f in doc["findings"]:
            if f["id"] == "fk-orphans":
                got[",".join(f["evidence"]["columns"])] = f["evidence"]["rows"]
        need(got == {k: v for k, v in want.items() if v}, f"fk-orphans {got} != planted {want}")
        bad = [c for c in doc["checks"] if c["status"] != "ok"]
        need(not bad, f"checks not ok: {bad}")
        return
    if kind == "validate-schema":
        drift = [f for f in doc["findings"] if f["id"].split("-")[0] in ("missing", "extra", "changed")]
        need(not drift, f"drift against the database's own snapshot: {drift[:5]}")
        bad = [c for c in doc["checks"] if c["status"] != "ok"]
        need(not bad, f"checks not ok: {bad}")
        return
    if kind == "lint":
        files = doc.get("files", doc.get("checked"))
        need(files is None or files == n, f"linted {files} files, expected {n}")
        return
    need(doc.get("ok") is True, "ok is not true")
    if kind in ("test", "test-rt"):
        need(doc["passed"] == n and doc["failed"] == 0, f"passed {doc['passed']} != {n}")
        need(doc["idempotent"] is True, "second migrate was not a no-op")
        if kind == "test-rt":
            bad = [m["id"] for m in doc["migrations"] if m["rollback"] != "ok" or m["reapply"] != "ok"]
            need(not bad, f"round trip not ok for {bad[:5]}")
        return
    if kind == "migrate":
        need(len(doc["applied"]) == n, f"applied {len(doc['applied'])} != {n}")
        need(doc["counts"]["applied"] == n, "counts.applied")
    elif kind == "noop":
        need(len(doc["applied"]) == 0, "the no-op run applied something")
        need(doc["already_applied"] == n, "already_applied")
    elif kind == "status":
        need(len(doc["migrations"]) == n, "status lists every migration")
        need(doc["counts"]["applied"] == n and doc["counts"]["pending"] == 0, "counts")
    elif kind == "validate":
        need(doc["files"] == n and not doc["problems"], "files/problems")
    else:
        sys.exit(f"unknown check {kind}")


# name, label, display unit
MEASUREMENTS = [
    ("floor_psql", "(a) floor: psql, 1 session, BEGIN/\\i/COMMIT per file", "s"),
    ("migrate_empty", "(b) pgkeel migrate, empty database", "s"),
    ("migrate_noop", "(c) pgkeel migrate, no-op (all applied)", "ms"),
    ("status", "(d) pgkeel status --format json (all applied)", "ms"),
    ("validate_offline", "(e) pgkeel migrate validate --offline", "ms"),
    ("connect_psql", "(r) reference: psql -X -c 'SELECT 1' (connect + 1 query)", "ms"),
]
NOOP_GOAL_MS = 30.0
RATIO_GOAL = 1.05


def report(samples_path, out_json, meta_path):
    samples = {}
    with open(samples_path) as f:
        for line in f:
            name, rep, secs = line.split()
            samples.setdefault(name, []).append(float(secs))
    with open(meta_path) as f:
        meta = json.load(f)

    med = {k: statistics.median(v) for k, v in samples.items()}
    ratio = med["migrate_empty"] / med["floor_psql"]
    # Per-run ratios: floor and migrate of the same repetition ran back to back.
    pair_ratios = [
        b / a for a, b in zip(samples["floor_psql"], samples["migrate_empty"])
    ]

    def fmt(secs, unit):
        return f"{secs:.3f} s" if unit == "s" else f"{secs * 1000:.1f} ms"

    rows = []
    for name, label, unit in MEASUREMENTS:
        if name not in samples:
            continue
        s = samples[name]
        goal, verdict = "", ""
        if name == "migrate_empty":
            goal = f"(b)/(a) = {ratio:.3f}  (goal <= {RATIO_GOAL})"
            verdict = "PASS" if ratio <= RATIO_GOAL else "FAIL"
        elif name in ("migrate_noop", "status"):
            goal = f"goal <= {NOOP_GOAL_MS:.0f} ms"
            verdict = "PASS" if med[name] * 1000 <= NOOP_GOAL_MS else "FAIL"
        rows.append(
            (label, fmt(med[name], unit), " ".join(fmt(x, unit) for x in s), goal, verdict)
        )

    n = meta["migrations"]
    print()
    print(f"pgkeel migrate benchmark: {n} migrations, {meta['reps']} runs each, median")
    print(f"  {meta['cpu']} ({meta['cores']} cores), {meta['postgres']}")
    print(f"  pgkeel {meta['pgkeel_version']} (checkout {meta.get('checkout_git', meta.get('git'))}), ssl={meta['server_ssl']}, "
          f"load average {meta.get('loadavg_at_start', '?')} at start, {meta['loadavg_at_end']} at end")
    print()
    w = [max(len(r[i]) for r in rows + [("measurement", "median", "runs", "goal", "result")]) for i in range(5)]
    hdr = ("measurement", "median", "runs", "goal", "result")
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)).rstrip())
    print("  ".join("-" * w[i] for i in range(5)).rstrip())
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    print()
    per_mig = (med["migrate_empty"] - med["floor_psql"]) / n * 1000
    print(
        f"(b)-(a) = {(med['migrate_empty'] - med['floor_psql']) * 1000:.0f} ms "
        f"= {per_mig:.3f} ms per migration; per-run ratios "
        + ", ".join(f"{r:.3f}" for r in pair_ratios)
    )

    result = {
        "benchmark": "migrate",
        "meta": meta,
        "unit": "seconds",
        "samples": samples,
        "median": med,
        "ratio_migrate_to_floor": ratio,
        "ratio_per_run": pair_ratios,
        "overhead_ms_per_migration": per_mig,
        "goals": {
            "ratio_migrate_to_floor_max": RATIO_GOAL,
            "noop_ms_max": NOOP_GOAL_MS,
            "status_ms_max": NOOP_GOAL_MS,
        },
        "pass": {
            "ratio": ratio <= RATIO_GOAL,
            "noop": med["migrate_noop"] * 1000 <= NOOP_GOAL_MS,
            "status": med["status"] * 1000 <= NOOP_GOAL_MS,
        },
    }
    with open(out_json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"results written to {out_json}")


# --- bench/validate.sh and bench/testsuite.sh --------------------------------------------------
# "sums": a derived sample per repetition, the sum of every sample whose name starts with the
# prefix in the same repetition (the hand-run baseline of several queries).
# "ratios": (key, numerator, denominator, goal as (op, value) or None, label).
# "limits": (sample, seconds, label): absolute goals.
VALIDATE = {
    "benchmark": "validate",
    "title": "pgkeel validate benchmark",
    "sums": {"baseline_antijoins": "antijoin_"},
    "rows": [
        ("baseline_antijoins", "(a) baseline: the minimal anti-join per FK, one psql each, summed", "s"),
        ("validate_data_pool1", "(b) validate --data, DATABASE_CONNECTION_POOL_SIZE=1", "s"),
        ("validate_data_pool", "(c) validate --data, DATABASE_CONNECTION_POOL_SIZE=POOL", "s"),
        ("pg_dump_schema", "(d) pg_dump --schema-only (baseline for the schema part)", "ms"),
        ("schema_dump", "(e) pgkeel schema dump --format json", "ms"),
        ("validate_schema", "(f) validate --schema --expected <(e)'s snapshot>", "ms"),
        ("connect_psql", "(r) reference: psql -X -c 'SELECT 1'", "ms"),
    ],
    "ratios": [
        ("data_pool1_to_baseline", "validate_data_pool1", "baseline_antijoins", ("<=", 1.3), "(b)/(a)"),
        ("data_pool_to_baseline", "validate_data_pool", "baseline_antijoins", ("<", 1.0), "(c)/(a)"),
        ("schema_dump_to_pg_dump", "schema_dump", "pg_dump_schema", None, "(e)/(d)"),
        ("validate_schema_to_pg_dump", "validate_schema", "pg_dump_schema", None, "(f)/(d)"),
    ],
    "limits": [("validate_schema", 2.0, "(f) < 2 s")],
}
TESTSUITE = {
    "benchmark": "testsuite",
    "title": "pgkeel test / lint benchmark",
    "sums": {},
    "rows": [
        ("migrate_empty", "(a) pgkeel migrate, fresh database (baseline)", "s"),
        ("test", "(b) pgkeel test (scratch database, full round trip)", "s"),
        ("test_no_round_trip", "(c) pgkeel test --no-round-trip (apply, locks, lint)", "s"),
        ("lint", "(d) pgkeel lint --pg-version 15 <every file>", "ms"),
        ("cat", "(e) reference: cat <every file> > /dev/null", "ms"),
        ("version", "(f) reference: pgkeel --version (process start)", "ms"),
    ],
    "ratios": [
        ("test_to_migrate", "test", "migrate_empty", ("<=", 4.0), "(b)/(a)"),
        ("test_no_round_trip_to_migrate", "test_no_round_trip", "migrate_empty", None, "(c)/(a)"),
        ("lint_to_version", "lint", "version", None, "(d)/(f)"),
    ],
    "limits": [("lint", 1.0, "(d) < 1 s")],
}


def report_generic(cfg, samples_path, out_json, meta_path):
    by_rep = {}
    with open(samples_path) as f:
        for line in f:
            name, rep, secs = line.split()
            by_rep.setdefault(name, {})[int(rep)] = float(secs)
    for derived, prefix in cfg["sums"].items():
        reps = {}
        for name, vals in by_rep.items():
            if name.startswith(prefix):
                for rep, secs in vals.items():
                    reps[rep] = reps.get(rep, 0.0) + secs
        if reps:
            by_rep[derived] = reps
    samples = {k: [v[r] for r in sorted(v)] for k, v in by_rep.items()}
    with open(meta_path) as f:
        meta = json.load(f)
    med = {k: statistics.median(v) for k, v in samples.items()}

    def fmt(secs, unit):
        return f"{secs:.3f} s" if unit == "s" else f"{secs * 1000:.1f} ms"

    ops = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b}
    ratios, per_run, passes, goals = {}, {}, {}, {}
    for key, num, den, goal, label in cfg["ratios"]:
        if num not in med or den not in med:
            continue
        ratios[key] = med[num] / med[den]
        common = sorted(set(by_rep[num]) & set(by_rep[den]))
        per_run[key] = [by_rep[num][r] / by_rep[den][r] for r in common]
        if goal:
            goals[key] = f"{goal[0]} {goal[1]}"
            passes[key] = ops[goal[0]](ratios[key], goal[1])
    for name, limit, label in cfg["limits"]:
        if name in med:
            goals[name + "_seconds"] = f"< {limit}"
            passes[name + "_seconds"] = med[name] < limit

    print()
    print(f"{cfg['title']}: median of {meta['reps']} runs")
    print(f"  {meta['cpu']} ({meta['cores']} cores), {meta['postgres']}")
    print(f"  pgkeel {meta['pgkeel_version']} (checkout {meta['checkout_git']}), "
          f"load average {meta['loadavg_at_start']} at start, {meta['loadavg_at_end']} at end")
    for k in ("rows", "tables", "migrations", "pool"):
        if k in meta:
            print(f"  {k}: {meta[k]}")
    print()
    hdr = ("measurement", "median", "runs")
    rows = [
        (label, fmt(med[name], unit), " ".join(fmt(x, unit) for x in samples[name]))
        for name, label, unit in cfg["rows"] if name in med
    ]
    w = [max(len(r[i]) for r in rows + [hdr]) for i in range(3)]
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)).rstrip())
    print("  ".join("-" * w[i] for i in range(3)))
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    print()
    for key, num, den, goal, label in cfg["ratios"]:
        if key not in ratios:
            continue
        verdict = ""
        if goal:
            verdict = f"  goal {goal[0]} {goal[1]}: " + ("PASS" if passes[key] else "FAIL")
        print(f"{label} = {ratios[key]:.2f}  (per run: "
              + ", ".join(f"{r:.2f}" for r in per_run[key]) + f"){verdict}")
    for name, limit, label in cfg["limits"]:
        if name in med:
            print(f"{label}: {fmt(med[name], 's')}  " + ("PASS" if passes[name + '_seconds'] else "FAIL"))

    result = {
        "benchmark": cfg["benchmark"],
        "meta": meta,
        "unit": "seconds",
        "samples": samples,
        "median": med,
        "ratios": ratios,
        "ratio_per_run": per_run,
        "goals": goals,
        "pass": passes,
    }
    with open(out_json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"results written to {out_json}")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd == "gen":
        gen(*argv[2:5])
    elif cmd == "url":
        print(url(argv[2], argv[3]))
    elif cmd == "schema-sql":
        schema_sql(*argv[2:6])
    elif cmd == "time":
        rest, ok = argv[3:], (0,)
        if rest[:1] == ["--ok-exit"]:
            ok = tuple(int(c) for c in rest[1].split(","))
            rest = rest[2:]
        if rest[:1] != ["--"]:
            sys.exit("usage: time OUT [--ok-exit CODES] -- CMD...")
        time_cmd(argv[2], rest[1:], ok)
    elif cmd == "check":
        check(*argv[2:5])
    elif cmd == "report":
        report(*argv[2:5])
    elif cmd == "report-validate":
        report_generic(VALIDATE, *argv[2:5])
    elif cmd == "report-testsuite":
        report_generic(TESTSUITE, *argv[2:5])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:
        sys.exit(130)
