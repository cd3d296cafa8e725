#!/usr/bin/env python3
"""DuckDB equivalents of `analyze` modes, for scripts/bench.

    analyze_duckdb.py FILE MODE [--threads N]

MODE:
  conn   one row per socket (cookie): first/last ts, duration, event count,
         retransmits, resets, bytes, last srtt, the state path (string_agg of newstate in
         mono_ns order) and the owner, written as CSV to /dev/null
         (~ `analyze --conn`)
  table  every event's table columns as CSV to /dev/null (~ `analyze`)
  json   every column of every event as JSON lines to /dev/null (~ `analyze --json`)

Prints one JSON object: {"mode", "secs" (query only, excluding interpreter
start-up and `import duckdb`), "rows_out", "threads", "duckdb"}. The
caller measures peak RSS (wait4) of this whole process.
"""
import argparse
import json
import time

import duckdb

QUERIES = {
    "conn": """
        COPY (
          SELECT cookie,
                 any_value(pid) AS pid, any_value(comm) AS comm,
                 any_value(saddr) AS saddr, any_value(sport) AS sport,
                 any_value(daddr) AS daddr, any_value(dport) AS dport,
                 min(ts) AS first_ts, max(ts) AS last_ts,
                 (max(mono_ns) - min(mono_ns)) / 1e9 AS duration_s,
                 count(*) AS events,
                 count(*) FILTER (WHERE kind = 'retransmit') AS retransmits,
                 count(*) FILTER (WHERE kind IN ('reset_recv', 'reset_sent')) AS resets,
                 max(bytes_acked) AS bytes_acked, max(bytes_received) AS bytes_received,
                 arg_max(srtt_us, mono_ns) AS srtt_us,
                 string_agg(newstate, '>' ORDER BY mono_ns) FILTER (WHERE kind = 'state_change') AS states
          FROM read_parquet('{f}')
          GROUP BY cookie
        ) TO '/dev/null' (FORMAT csv)
    """,
    "table": """
        COPY (
          SELECT ts, kind, pid, comm, saddr, sport, daddr, dport, oldstate, newstate, sk_err
          FROM read_parquet('{f}')
        ) TO '/dev/null' (FORMAT csv)
    """,
    "json": """
        COPY (SELECT * FROM read_parquet('{f}')) TO '/dev/null' (FORMAT json)
    """,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("mode", choices=sorted(QUERIES))
    ap.add_argument("--threads", type=int, default=0, help="0 = DuckDB's default (all cores)")
    a = ap.parse_args()
    con = duckdb.connect()
    if a.threads:
        con.execute(f"SET threads = {a.threads}")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    q = QUERIES[a.mode].format(f=a.file.replace("'", "''"))
    t0 = time.perf_counter()
    res = con.execute(q).fetchall()
    secs = time.perf_counter() - t0
    rows = res[0][0] if res and res[0] else None
    print(json.dumps({"mode": a.mode, "secs": secs, "rows_out": rows, "threads": threads,
                      "duckdb": duckdb.__version__}))


if __name__ == "__main__":
    main()
