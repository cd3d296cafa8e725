#!/usr/bin/env python3
"""Recorder CPU per row under the loopback churn, per thread, A/B.

For each recorder binary given (`--record A --record B ...`), `--rounds`
times in turn: start it writing to a scratch file, wait for its start
line (the start-up snapshot is done), run the churn for `--secs`, wait
`--settle` seconds for the writer to catch up, read the CPU time (user,
system) of each of its threads from /proc, stop it and count the rows of
the file that are not snapshot rows (DuckDB). Prints one JSON line per run
and a summary: the median CPU microseconds per row of each binary, and of
each of its threads (`record` is the drain thread, `writer` the writer),
events lost and peak RSS.

Unlike bench.py's tracer CPU (from wait4, start-up included) this counts
only the churn window, so a large start-up snapshot (thousands of
TIME_WAIT sockets left by earlier runs) does not blur small differences.
Run as root (record needs it). Example:

    sudo bench/recorder_cpu.py --record /tmp/base/record --record target/release/record \\
        --churn target/release/examples/churn --rounds 5
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time

import duckdb

TCK = os.sysconf("SC_CLK_TCK")


def threads(pid):
    """{tid: (name, user seconds, system seconds)} of a process."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except FileNotFoundError:
            continue
        name = s[s.index("(") + 1 : s.rindex(")")]
        fields = s[s.rindex(")") + 2 :].split()
        out[tid] = (name, int(fields[11]) / TCK, int(fields[12]) / TCK)
    return out


def run(record, args, path):
    for p in (path, path + ".checkpoint"):
        if os.path.exists(p):
            os.unlink(p)
    cmd = [record, "-o", path, "--force", "--ring-size", args.ring_size]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.05)
            err.seek(0)
            if "tracing TCP" in err.read():
                break
        else:
            proc.kill()
            raise SystemExit(f"{record} did not start")
        before = threads(proc.pid)
        churn = subprocess.run(
            [args.churn, "--secs", str(args.secs), "--threads", str(args.threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        time.sleep(args.settle)
        after = threads(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        err.seek(0)
        text = err.read()
    lost = re.search(r"(\d+) lost", text)
    per = {}
    for tid, (name, user, system) in after.items():
        _, u0, s0 = before.get(tid, (name, 0.0, 0.0))
        name = "record" if name == os.path.basename(record)[:15] else name
        u, s = per.get(name, (0.0, 0.0))
        per[name] = (u + user - u0, s + system - s0)
    rows = duckdb.sql(f"select count(*) from '{path}' where kind <> 'snapshot'").fetchall()[0][0]
    cpu = sum(u + s for u, s in per.values())
    return {
        "record": record,
        "connections": json.loads(churn.stdout.strip().splitlines()[-1])["connections"],
        "rows": rows,
        "lost": int(lost.group(1)) if lost else None,
        "cpu_s": round(cpu, 3),
        "us_per_row": round(cpu / rows * 1e6, 3),
        "threads_us_per_row": {k: round((u + s) / rows * 1e6, 3) for k, (u, s) in per.items()},
        "max_rss_mib": usage.ru_maxrss // 1024,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", action="append", required=True, help="a record binary (repeat for A/B)")
    ap.add_argument("--churn", required=True, help="record/examples/churn binary")
    ap.add_argument("--secs", type=float, default=3)
    ap.add_argument("--threads", type=int, default=2, help="churn client threads")
    ap.add_argument("--ring-size", default="8M")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=2.5, help="seconds after the churn before reading the CPU")
    ap.add_argument("--out", default="/tmp/deeptcp-recorder-cpu.parquet")
    args = ap.parse_args()
    results = {r: [] for r in args.record}
    for _ in range(args.rounds):
        for r in args.record:
            res = run(r, args, args.out)
            print(json.dumps(res), flush=True)
            results[r].append(res)
    for r, runs in results.items():
        names = sorted({k for x in runs for k in x["threads_us_per_row"]})
        med = {k: statistics.median(x["threads_us_per_row"].get(k, 0) for x in runs) for k in names}
        print(
            json.dumps(
                {
                    "record": r,
                    "median_us_per_row": statistics.median(x["us_per_row"] for x in runs),
                    "median_threads_us_per_row": med,
                    "lost": [x["lost"] for x in runs],
                    "max_rss_mib": [x["max_rss_mib"] for x in runs],
                }
            )
        )


if __name__ == "__main__":
    main()
