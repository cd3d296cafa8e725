#!/usr/bin/env python3
"""Holds sql/deeptcp.sql to analyze: the same connections (--conn --json)
and the same statistics (--stats --json, with and without each --by) on the
given recordings.

usage: check_sql.py ANALYZE_BINARY FILE_OR_GLOB...
Exit 0: identical; 1: a difference (printed); 3: duckdb not installed.
"""
import json
import os
import subprocess
import sys

try:
    import duckdb
except ImportError as e:
    print(f"python package missing: {e}", file=sys.stderr)
    sys.exit(3)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONN_FIELDS = [
    "host", "start_mono_ns", "end_mono_ns", "duration_ns", "still_open",
    "opened_before_recording", "close_reason", "pid", "tid", "comm", "attribution",
    "cookie", "cgroup_id", "netns", "family", "saddr", "sport", "daddr", "dport",
    "state_path", "retransmits", "resets", "zero_windows", "errors", "zero_window_stalls",
    "zero_window_stall_ns", "bytes_acked",
    "bytes_received", "srtt_us", "srtt_min_us", "srtt_max_us", "cwnd", "handshake_ns",
]
NAME_FIELDS = ["cgroup", "container_id", "container_runtime", "pod_uid", "unit", "netns_name"]
CONN_FIELDS += NAME_FIELDS
STATS_FIELDS = [
    "connections", "still_open", "failed", "failures", "retransmits",
    "retransmits_per_conn", "zero_window_stalls", "zero_window_stall_ns",
    "handshake_ns", "srtt_us", "duration_ns",
]
BYS = [None, "daddr", "dport", "sport", "comm", "pid", "cgroup", "netns", "host"]


def analyze(binary, args, inputs):
    out = subprocess.run([binary, *args, *inputs], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def sql_rows(con, query, params):
    cur = con.execute(query, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def normal(v):
    """JSON and DuckDB spellings of the same value."""
    if isinstance(v, dict):
        return {k: normal(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [normal(x) for x in v]
    if isinstance(v, float):
        return round(v, 9)
    return v


def bucket(v):
    """analyze/src/stats.rs's bucket, in integers."""
    if v < 128:
        return v
    e = v.bit_length() - 1
    return (e - 6) * 128 + ((v >> (e - 7)) & 127)


def check_buckets(con):
    """deeptcp_bucket (floating-point log2, corrected) against the integer
    definition, at every power of two up to 2^53 and its neighbours."""
    vals = list(range(0, 300))
    for e in range(8, 54):
        vals += [2**e - 1, 2**e, 2**e + 1, 2**e + 2**(e - 1) - 1, 2**e + 2**(e - 7)]
    vals += [(i * 2654435761) % 2**52 for i in range(5000)]
    got = con.execute(
        "select list(deeptcp_bucket(v) order by i) from (select unnest(?::BIGINT[]) v, unnest(range(?)) i)",
        [vals, len(vals)],
    ).fetchone()[0]
    return [f"deeptcp_bucket({v}) = {g}, want {bucket(v)}" for v, g in zip(vals, got) if g != bucket(v)]


def compare(what, want, got, fields):
    """The differences between analyze's (`want`) and SQL's rows by key."""
    out = []
    for k in sorted(set(want) | set(got), key=str):
        if k not in want or k not in got:
            out.append(f"{what} {k!r}: only in {'SQL' if k in got else 'analyze'}")
            continue
        for f in fields:
            if f in NAME_FIELDS and f not in want[k]:
                continue  # a recording without name tables
            a, b = normal(want[k][f]), normal(got[k][f])
            if a != b:
                out.append(f"{what} {k!r}: {f}: analyze {a!r}, SQL {b!r}")
    return out


def main():
    binary, inputs = sys.argv[1], sys.argv[2:]
    con = duckdb.connect()
    with open(os.path.join(ROOT, "sql", "deeptcp.sql")) as f:
        con.execute(f.read())
    failures = check_buckets(con)

    want = analyze(binary, ["--conn", "--json"], inputs)
    got = sql_rows(con, "select * from deeptcp_conns(?)", [inputs])
    key = lambda r: (r["host"], r["cookie"], r["start_mono_ns"])
    wmap = {key(r): r for r in want}
    gmap = {key(r): r for r in got}
    if len(wmap) != len(want) or len(gmap) != len(got):
        failures.append(f"connection keys not unique: {len(want)}/{len(wmap)} vs {len(got)}/{len(gmap)}")
    failures += compare("conn", wmap, gmap, CONN_FIELDS)

    for by in BYS:
        args = ["--stats", "--json"] + (["--by", by] if by else [])
        want = analyze(binary, args, inputs)
        got = sql_rows(con, "select * from deeptcp_stats(?, ?)", [inputs, by])
        wmap = {None if r["group"] is None else str(r["group"]): r for r in want}
        gmap = {r["group"]: r for r in got}
        failures += compare(f"stats by {by}, group", wmap, gmap, STATS_FIELDS)
        print(f"stats by {by or '(none)'}: {len(want)} groups", file=sys.stderr)

    for line in failures[:60]:
        print(line)
    if failures:
        print(f"{len(failures)} differences", file=sys.stderr)
        sys.exit(1)
    print(f"same connections and statistics for {' '.join(inputs)}", file=sys.stderr)


if __name__ == "__main__":
    main()
