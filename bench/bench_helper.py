#!/usr/bin/env python3
"""Helper for bench/migrate.sh: migration generation, timing, output checks, report.

Subcommands (all used by migrate.sh; not meant to be called by hand):

  gen DIR N DRIVER        write N native migrations into DIR and the psql driver script DRIVER
  url URL DBNAME          print URL with its database replaced by DBNAME
  time OUT -- CMD...      run CMD (stdout > OUT, stderr > OUT.err), print the wall time in seconds
  check KIND FILE N       sanity-check a command's output (KIND: migrate, noop, status, validate)
  report SAMPLES OUT_JSON META_JSON
                          print the results table and write the JSON results
"""

import json
import os
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit


def gen(directory, n, driver):
    """N native pgshift migrations, each one table chained to the previous one by a FK."""
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


def url(base, dbname):
    p = urlsplit(base)
    return urlunsplit((p.scheme, p.netloc, "/" + dbname, p.query, p.fragment))


def time_cmd(out, cmd):
    """Wall time of CMD with a monotonic high-resolution clock (fork/exec included)."""
    with open(out, "wb") as o, open(out + ".err", "wb") as e:
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        t1 = time.perf_counter()
    if rc != 0:
        sys.stderr.write(f"command failed (exit {rc}): {' '.join(cmd)}\n")
        with open(out + ".err", "rb") as e:
            sys.stderr.write(e.read().decode(errors="replace")[-4000:])
        with open(out, "rb") as o:
            sys.stderr.write(o.read().decode(errors="replace")[-4000:])
        sys.exit(rc)
    print(f"{t1 - t0:.6f}")


def check(kind, path, n):
    """Fails loudly when a command did not do what the benchmark assumes."""
    n = int(n)
    with open(path) as f:
        doc = json.load(f)

    def need(cond, what):
        if not cond:
            sys.exit(f"check {kind} failed: {what}\n{json.dumps(doc)[:2000]}")

    need(doc.get("ok") is True, "ok is not true")
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
    ("migrate_empty", "(b) pgshift migrate, empty database", "s"),
    ("migrate_noop", "(c) pgshift migrate, no-op (all applied)", "ms"),
    ("status", "(d) pgshift status --format json (all applied)", "ms"),
    ("validate_offline", "(e) pgshift migrate validate --offline", "ms"),
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
    print(f"pgshift migrate benchmark: {n} migrations, {meta['reps']} runs each, median")
    print(f"  {meta['cpu']} ({meta['cores']} cores), {meta['postgres']}")
    print(f"  pgshift {meta['pgshift_version']} (checkout {meta.get('checkout_git', meta.get('git'))}), ssl={meta['server_ssl']}, "
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


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd == "gen":
        gen(*argv[2:5])
    elif cmd == "url":
        print(url(argv[2], argv[3]))
    elif cmd == "time":
        if argv[3] != "--":
            sys.exit("usage: time OUT -- CMD...")
        time_cmd(argv[2], argv[4:])
    elif cmd == "check":
        check(*argv[2:5])
    elif cmd == "report":
        report(*argv[2:5])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:
        sys.exit(130)
