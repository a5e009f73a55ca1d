#!/usr/bin/env python3
"""Summarizes a bench/run.sh result directory.

    bench/summarize.py bench/results/<stamp>

Reads runs.csv and meta.env, prints the table and writes summary.json (meta, one
summary row per protocol, client count and target, and every run).
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
    protocols = meta.get("protocol", "simple").split()
    # whatever runs.csv holds beyond meta.env (a hand-edited or merged file) is shown too
    protocols += sorted({r["protocol"] for r in runs} - set(protocols))
    clients += sorted({r["clients"] for r in runs if r["clients"] is not None} - set(clients))
    targets += sorted({r["target"] for r in runs} - set(targets))
    rows = []
    for p in protocols:
        for c in clients:
            for t in targets:
                rs = [r for r in runs
                      if r["protocol"] == p and r["target"] == t and r["clients"] == c]
                if rs:
                    rows.append(summary_row(p, t, c, rs))
    base = {(r["target"], r["protocol"], r["clients"]): r["tps_median"] for r in rows}
    for r in rows:
        for ref in ("pgbouncer", "direct"):
            b = base.get((ref, r["protocol"], r["clients"]))
            r[f"vs_{ref}"] = (r["tps_median"] / b) if (b and r["tps_median"]) else None

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    print(f"pgbench -S, mode={meta.get('mode')}, protocol={meta.get('protocol')}, "
          f"{meta.get('duration_s')}s x {meta.get('rounds')} rounds, pool_size={meta.get('pool_size')}, "
          f"pgbench -j {meta.get('pgbench_threads')}, {meta.get('cpus')} CPUs shared by "
          f"pgbench, PostgreSQL and the pooler")
    if "sluice" in targets and "pgbouncer" in meta.get("sluice_bin", ""):
        print(f"NOTE: sluice rows ran {meta['sluice_bin']} (SLUICE_BIN override)")
    hdr = ("protocol", "target", "clients", "tps", "spread", "vs pgbouncer", "vs direct",
           "cpu us/txn", "lat ms", "failed txns", "runs ok")
    fmt = "{:<9} {:<10} {:>7} {:>10} {:>7} {:>12} {:>9} {:>10} {:>7} {:>11} {:>7}"
    print(fmt.format(*hdr))
    notes = []
    prev = None
    for r in rows:
        if prev is not None and r["protocol"] != prev:
            print()
        prev = r["protocol"]
        tps = f(r["tps_median"], ".0f") if r["runs_ok"] else "FAILED"
        spread = (f"{100 * (r['tps_max'] - r['tps_min']) / r['tps_median']:.0f}%"
                  if r["runs_ok"] > 1 and r["tps_median"] else "-")
        print(fmt.format(r["protocol"], r["target"], r["clients"], tps, spread,
                         f(r["vs_pgbouncer"], ".2f"), f(r["vs_direct"], ".2f"),
                         f(r["cpu_us_per_txn_median"], ".1f"), f(r["latency_ms_median"], ".3f"),
                         r["failed_transactions"], f"{r['runs_ok']}/{r['runs']}"))
        # one line per distinct reason; pgbench names the client, so cap the list
        for n in r["notes"][:3]:
            notes.append(f"  {r['protocol']} {r['target']} c={r['clients']}: {n}")
        if len(r["notes"]) > 3:
            notes.append(f"  {r['protocol']} {r['target']} c={r['clients']}: "
                         f"(+{len(r['notes']) - 3} more, see runs.csv)")
    if notes:
        print("failures:")
        print("\n".join(notes))
    print("tps, lat and cpu are medians over the successful rounds; spread = (max-min)/median "
          "of tps;\nvs pgbouncer / vs direct: same protocol and client count; cpu us/txn = the "
          "pooler's user+system\nCPU during the run / transactions (direct: no pooler)")
    if meta.get("runs_elapsed_s"):
        print(f"runs took {int(meta['runs_elapsed_s']) // 60}m{int(meta['runs_elapsed_s']) % 60:02d}s")

    (out / "summary.json").write_text(json.dumps(
        {"meta": meta, "summary": rows, "runs": runs}, indent=2) + "\n")


def summary_row(protocol, target, clients, rs):
    ok = [r for r in rs if r["status"] == "ok"]
    return {
        "protocol": protocol,
        "target": target,
        "clients": clients,
        "runs": len(rs),
        "runs_ok": len(ok),
        "tps_median": median(r["tps"] for r in ok),
        "tps_min": min((r["tps"] for r in ok), default=None),
        "tps_max": max((r["tps"] for r in ok), default=None),
        "latency_ms_median": median(r["latency_ms"] for r in ok),
        "cpu_us_per_txn_median": median(r["cpu_us_per_txn"] for r in ok),
        "failed_transactions": sum(r["failed_transactions"] or 0 for r in rs),
        "notes": sorted({r["note"] for r in rs if r["note"]}),
    }


if __name__ == "__main__":
    main()
