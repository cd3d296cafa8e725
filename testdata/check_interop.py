#!/usr/bin/env python3
"""Checks that a deeptcp recording loads into DuckDB, pandas and polars with
the column types documented in format/SCHEMA.md, for the file's schema
version (1 or 2: a v1 file must have exactly the v1 columns, a v2 file the v1
columns followed by the v2 ones).

    check_interop.py FILE [--expect-rows N]

Exits 0 and prints "interop ok: N rows (schema vX); kinds {...}" when every
check passes; exits 1 with the first mismatch otherwise; exits 3 when a
Python package is missing.
"""
import sys

try:
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow.parquet as pq
except ImportError as e:  # pragma: no cover
    print(f"missing python package: {e.name}", file=sys.stderr)
    sys.exit(3)

# ---- schema v1 ----
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
DUCKDB_V2 = {
    "probe": "VARCHAR",
    "cookie": "UBIGINT",
    "cgroup_id": "UBIGINT",
    "attribution": "VARCHAR",
    "snd_wnd": "UINTEGER",
    "rcv_wnd": "UINTEGER",
    "srtt_us": "UINTEGER",
    "snd_cwnd": "UINTEGER",
    "bytes_acked": "UBIGINT",
    "bytes_received": "UBIGINT",
    "window": "UINTEGER",
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
PANDAS_V2 = {
    "probe": "category",
    "cookie": "uint64",
    "cgroup_id": "uint64",
    "attribution": "category",
}
# Nullable integer columns: with pandas' default (numpy) backend their dtype
# depends on the data: the integer dtype when the column has no null, float64
# (NaN for null) as soon as it has one. dtype_backend="numpy_nullable" always
# gives the nullable extension dtype named here.
PANDAS_NULLABLE = {"stack_id": "Int64"}
PANDAS_NULLABLE_V2 = {
    "snd_wnd": "UInt32",
    "rcv_wnd": "UInt32",
    "srtt_us": "UInt32",
    "snd_cwnd": "UInt32",
    "bytes_acked": "UInt64",
    "bytes_received": "UInt64",
    "window": "UInt32",
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
POLARS_V2 = {
    "probe": pl.Categorical,
    "cookie": pl.UInt64,
    "cgroup_id": pl.UInt64,
    "attribution": pl.Categorical,
    "snd_wnd": pl.UInt32,
    "rcv_wnd": pl.UInt32,
    "srtt_us": pl.UInt32,
    "snd_cwnd": pl.UInt32,
    "bytes_acked": pl.UInt64,
    "bytes_received": pl.UInt64,
    "window": pl.UInt32,
}

ATTRIBUTIONS = {"task", "owner", "listener", "snapshot", "backfill", "unknown"}


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

    kv = pq.read_metadata(path).metadata or {}
    # Page checksums (deeptcp writes one per page; older files have none):
    # Arrow C++ verifies every page that has one.
    pq.read_table(path, page_checksum_verification=True)
    raw_version = kv.get(b"deeptcp.schema_version")
    if raw_version not in (b"1", b"2"):
        fail(f"deeptcp.schema_version is {raw_version!r}, expected b'1' or b'2'")
    version = int(raw_version)
    duck_types = dict(DUCKDB)
    pandas_types = dict(PANDAS)
    pandas_nullable = dict(PANDAS_NULLABLE)
    polars_types = dict(POLARS)
    if version >= 2:
        duck_types.update(DUCKDB_V2)
        pandas_types.update(PANDAS_V2)
        pandas_nullable.update(PANDAS_NULLABLE_V2)
        polars_types.update(POLARS_V2)

    # DuckDB: types, the README's group-by, address casts.
    con = duckdb.connect()
    cols = con.sql(f"DESCRIBE SELECT * FROM '{q}'").fetchall()
    got = {name: DUCKDB_ALIASES.get(ty, ty) for name, ty, *_ in cols}
    if list(got) != list(duck_types):
        fail(f"duckdb columns {list(got)} != {list(duck_types)}")
    for name, ty in duck_types.items():
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
    if version >= 2:
        bad = con.sql(
            f"SELECT DISTINCT attribution FROM '{q}' WHERE attribution NOT IN ({', '.join(repr(a) for a in sorted(ATTRIBUTIONS))})"
        ).fetchall()
        if bad:
            fail(f"undocumented attribution values {bad}")
        bad = con.sql(f"SELECT DISTINCT probe FROM '{q}' WHERE probe <> '' AND probe NOT SIMILAR TO '[a-z_]+:.+'").fetchall()
        if bad:
            fail(f"probe values not of the form type:name: {bad}")

    # pandas
    df = pd.read_parquet(path)
    for name, ty in pandas_types.items():
        if str(df[name].dtype) != ty:
            fail(f"pandas: column {name} is {df[name].dtype}, expected {ty}")
    nullable = pd.read_parquet(path, columns=list(pandas_nullable), dtype_backend="numpy_nullable")
    for name, ty in pandas_nullable.items():
        has_null = bool(nullable[name].isna().any())
        want = "float64" if has_null else ty.lower()
        if str(df[name].dtype) != want:
            fail(f"pandas: column {name} (nulls: {has_null}) is {df[name].dtype}, expected {want}")
        if str(nullable[name].dtype) != ty:
            fail(f"pandas numpy_nullable: column {name} is {nullable[name].dtype}, expected {ty}")
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
    if list(schema) != list(polars_types):
        fail(f"polars columns {list(schema)} != {list(polars_types)}")
    for name, ty in polars_types.items():
        if schema[name] != ty:
            fail(f"polars: column {name} is {schema[name]}, expected {ty}")

    print(f"interop ok: {rows} rows (schema v{version}); kinds {dict(sorted(counts.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
