#!/usr/bin/env python3
"""Summarizes a bench/run.sh result directory.

    bench/summarize.py bench/results/<stamp>

Reads runs.csv and meta.env, prints the table and writes summary.json (meta, one
summary row per target and client count, and every run).
"""
import csv
import json
import statistics
import sys
from pathlib import Path


def num(s, kind=float):
    try:
        return kind(s) if s not in (None, "") else None
    except ValueError:
        return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    meta = {}
    for line in (out / "meta.env").read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            meta[k] = v
    with open(out / "runs.csv", newline="") as f:
        runs = list(csv.DictReader(f))
    for r in runs:
        for k in ("round", "seq", "clients", "duration_s", "transactions", "failed_transactions",
                  "cpu_us"):
            r[k] = num(r[k], int)
        for k in ("tps", "latency_ms", "cpu_us_per_txn"):
            r[k] = num(r[k])

    targets = meta.get("targets", "direct pgbouncer sluice").split()
    clients = [int(c) for c in meta.get("clients", "").split()]
    rows = []
    for c in clients:
        for t in targets:
            rs = [r for r in runs if r["target"] == t and r["clients"] == c]
            ok = [r for r in rs if r["status"] == "ok"]
            rows.append({
                "target": t,
                "clients": c,
                "runs": len(rs),
                "runs_ok": len(ok),
                "tps_median": median(r["tps"] for r in ok),
                "tps_min": min((r["tps"] for r in ok), default=None),
                "tps_max": max((r["tps"] for r in ok), default=None),
                "latency_ms_median": median(r["latency_ms"] for r in ok),
                "cpu_us_per_txn_median": median(r["cpu_us_per_txn"] for r in ok),
                "failed_transactions": sum(r["failed_transactions"] or 0 for r in rs),
                "notes": sorted({r["note"] for r in rs if r["note"]}),
            })
    base = {(r["target"], r["clients"]): r["tps_median"] for r in rows}
    for r in rows:
        for ref in ("pgbouncer", "direct"):
            b = base.get((ref, r["clients"]))
            r[f"vs_{ref}"] = (r["tps_median"] / b) if (b and r["tps_median"]) else None

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    print(f"pgbench -S, mode={meta.get('mode')}, protocol={meta.get('protocol')}, "
          f"{meta.get('duration_s')}s x {meta.get('rounds')} rounds, pool_size={meta.get('pool_size')}, "
          f"pgbench -j {meta.get('pgbench_threads')}, {meta.get('cpus')} CPUs shared by "
          f"pgbench, PostgreSQL and the pooler")
    if "sluice" in targets and "pgbouncer" in meta.get("sluice_bin", ""):
        print(f"NOTE: sluice rows ran {meta['sluice_bin']} (SLUICE_BIN override)")
    hdr = ("target", "clients", "tps", "spread", "vs pgbouncer", "vs direct", "cpu us/txn",
           "lat ms", "failed txns", "runs ok")
    fmt = "{:<10} {:>7} {:>10} {:>7} {:>12} {:>9} {:>10} {:>7} {:>11} {:>7}"
    print(fmt.format(*hdr))
    notes = []
    for r in rows:
        tps = f(r["tps_median"], ".0f") if r["runs_ok"] else "FAILED"
        spread = (f"{100 * (r['tps_max'] - r['tps_min']) / r['tps_median']:.0f}%"
                  if r["runs_ok"] > 1 and r["tps_median"] else "-")
        print(fmt.format(r["target"], r["clients"], tps, spread, f(r["vs_pgbouncer"], ".2f"),
                         f(r["vs_direct"], ".2f"), f(r["cpu_us_per_txn_median"], ".1f"),
                         f(r["latency_ms_median"], ".3f"), r["failed_transactions"],
                         f"{r['runs_ok']}/{r['runs']}"))
        for n in r["notes"]:
            notes.append(f"  {r['target']} c={r['clients']}: {n}")
    if notes:
        print("failures:")
        print("\n".join(notes))
    print("tps, lat and cpu are medians over the successful rounds; spread = (max-min)/median "
          "of tps;\ncpu us/txn = the pooler's user+system CPU during the run / transactions "
          "(direct: no pooler)")

    (out / "summary.json").write_text(json.dumps(
        {"meta": meta, "summary": rows, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
