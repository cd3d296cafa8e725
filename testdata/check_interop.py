#!/usr/bin/env python3
"""Checks that a deeptcp recording loads into DuckDB, pandas and polars with
the column types documented in format/SCHEMA.md.

    check_interop.py FILE [--expect-rows N]

Exits 0 and prints "interop ok: ..." when every check passes; exits 1 with
the first mismatch otherwise; exits 3 when a Python package is missing.
"""
import sys

try:
    import duckdb
    import pandas as pd
    import polars as pl
except ImportError as e:  # pragma: no cover
    print(f"missing python package: {e.name}", file=sys.stderr)
    sys.exit(3)

DUCKDB = {
    "ts": "TIMESTAMP WITH TIME ZONE",  # nanosecond precision: TIMESTAMPTZ_NS in DESCRIBE
    "mono_ns": "BIGINT",
    "kind": "VARCHAR",
    "pid": "UINTEGER",
    "tid": "UINTEGER",
    "comm": "VARCHAR",
    "family": "VARCHAR",
    "saddr": "VARCHAR",
    "daddr": "VARCHAR",
    "sport": "USMALLINT",
    "dport": "USMALLINT",
    "oldstate": "VARCHAR",
    "newstate": "VARCHAR",
    "sk_err": "INTEGER",
    "netns": "UINTEGER",
    "stack_id": "BIGINT",
}
DUCKDB_ALIASES = {"TIMESTAMPTZ_NS": "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS WITH TIME ZONE": "TIMESTAMP WITH TIME ZONE"}

PANDAS = {
    "ts": "datetime64[ns, UTC]",
    "mono_ns": "int64",
    "kind": "category",
    "pid": "uint32",
    "tid": "uint32",
    "comm": "category",
    "family": "category",
    "sport": "uint16",
    "dport": "uint16",
    "oldstate": "category",
    "newstate": "category",
    "sk_err": "int32",
    "netns": "uint32",
}

POLARS = {
    "ts": pl.Datetime("ns", "UTC"),
    "mono_ns": pl.Int64,
    "kind": pl.Categorical,
    "pid": pl.UInt32,
    "tid": pl.UInt32,
    "comm": pl.Categorical,
    "family": pl.Categorical,
    "saddr": pl.String,
    "daddr": pl.String,
    "sport": pl.UInt16,
    "dport": pl.UInt16,
    "oldstate": pl.Categorical,
    "newstate": pl.Categorical,
    "sk_err": pl.Int32,
    "netns": pl.UInt32,
    "stack_id": pl.Int64,
}


def fail(msg):
    print(f"interop FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[1]
    expect_rows = int(argv[3]) if len(argv) >= 4 and argv[2] == "--expect-rows" else None
    q = path.replace("'", "''")

    # DuckDB: types, the README's group-by, address casts.
    con = duckdb.connect()
    cols = con.sql(f"DESCRIBE SELECT * FROM '{q}'").fetchall()
    got = {name: DUCKDB_ALIASES.get(ty, ty) for name, ty, *_ in cols}
    if list(got) != list(DUCKDB):
        fail(f"duckdb columns {list(got)} != {list(DUCKDB)}")
    for name, ty in DUCKDB.items():
        if got[name] != ty:
            fail(f"duckdb: column {name} is {got[name]}, expected {ty}")
    counts = dict(con.sql(f"SELECT kind, count(*) FROM '{q}' GROUP BY ALL").fetchall())
    rows = sum(counts.values())
    if expect_rows is not None and rows != expect_rows:
        fail(f"duckdb counted {rows} rows, expected {expect_rows}")
    # (DuckDB's INET casts need the inet extension, a download; address text is checked with pandas below.)
    skew = con.sql(f"SELECT max(abs(epoch_ns(ts) - mono_ns)) - min(abs(epoch_ns(ts) - mono_ns)) FROM '{q}'").fetchall()[0][0]
    if skew not in (None, 0):
        fail(f"ts - mono_ns is not constant (spread {skew} ns): ts must be anchor + monotonic offset")

    # pandas
    df = pd.read_parquet(path)
    for name, ty in PANDAS.items():
        if str(df[name].dtype) != ty:
            fail(f"pandas: column {name} is {df[name].dtype}, expected {ty}")
    if len(df) != rows:
        fail(f"pandas read {len(df)} rows, duckdb {rows}")
    import ipaddress

    for col in ("saddr", "daddr"):
        for v in df[col].unique():
            a = ipaddress.ip_address(v)
            if getattr(a, "ipv4_mapped", None) is not None:
                fail(f"{col} {v} is IPv4-mapped; must be normalised to IPv4")
            if str(a) != v:
                fail(f"{col} {v} is not canonical text ({a})")

    # polars
    schema = pl.read_parquet(path).schema
    for name, ty in POLARS.items():
        if schema[name] != ty:
            fail(f"polars: column {name} is {schema[name]}, expected {ty}")

    print(f"interop ok: {rows} rows; kinds {dict(sorted(counts.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
