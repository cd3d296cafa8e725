-- deeptcp on DuckDB: the connections of `analyze --conn` and the
-- statistics of `analyze --stats`, computed from any set of recordings.
--
--   duckdb -c ".read sql/deeptcp.sql" \
--          -c "select * from deeptcp_stats('fleet/**/*.parquet', 'daddr')"
--
-- Macros (FILES is anything read_parquet takes: a path, a glob, a list of
-- them; hive-partitioned folders such as host=web1/date=2026-04-14/ add
-- their partition columns to deeptcp_events):
--
--   deeptcp_events(FILES)      the rows, with the recording's host
--                              (rec_host) and boot id from each file's
--                              metadata, the names of their cgroup and
--                              netns where the file has them, and the
--                              merge order (ord)
--   deeptcp_conns(FILES)       one row per connection, the columns of
--                              `analyze --conn --json` (analyze/JSON.md)
--   deeptcp_stats(FILES, BY)   one row per group, the fields of
--                              `analyze --stats --json`; BY is NULL or one
--                              of 'daddr', 'dport', 'sport', 'comm', 'pid',
--                              'cgroup', 'netns', 'host'
--
-- Same rules as analyze (analyze/src/conn.rs, analyze/src/stats.rs); the
-- test analyze/tests/sql.rs holds the two to the same numbers on the
-- committed fixtures. Where they differ, by design:
--   * Schema v2 files (sockets are identified by their cookie). Rows
--     without a cookie (the start-up snapshot's where it read /proc, and
--     in older recordings) join the socket with the
--     same addresses that appears after them, as in analyze; v1 files,
--     which have no cookies at all, need analyze.
--   * A socket's rows after its CLOSE belong to it however late they come
--     (analyze ends a connection 1 s of recording time after its CLOSE
--     when no destroy_sock comes): only `events` can differ.
--   * state_path is never elided (analyze keeps 16 states).
--   * close_reason names the common errnos; others are `error (N)`.
--
-- Portability: window functions, FILTER and max_by/min_by are standard
-- enough for Trino and Spark SQL 3. DuckDB-only: the macros themselves,
-- read_parquet/parquet_kv_metadata, list functions (flatten, list
-- aggregation with ORDER BY: array_agg(... ORDER BY ...) on Trino,
-- collect_list plus array_sort on Spark), `//` integer division (Trino:
-- `/` on integers; Spark: `div`) and `IGNORE NULLS` written after the
-- argument (Spark: last(x, true)).

-- The log-linear bucket of a non-negative integer (analyze/src/stats.rs):
-- itself below 128, else (e - 6) * 128 + the 7 bits after the leading one,
-- e = floor(log2 v) (corrected, so exact up to 2^53).
CREATE OR REPLACE MACRO deeptcp_log2(v) AS (
    CAST(floor(log2(greatest(v, 1))) AS BIGINT)
    - CASE WHEN power(2, floor(log2(greatest(v, 1)))) > greatest(v, 1) THEN 1 ELSE 0 END
    + CASE WHEN power(2, floor(log2(greatest(v, 1))) + 1) <= greatest(v, 1) THEN 1 ELSE 0 END
);

CREATE OR REPLACE MACRO deeptcp_bucket(v) AS (
    CASE WHEN v < 128 THEN v
         ELSE (deeptcp_log2(v) - 6) * 128
              + (v // CAST(power(2, greatest(deeptcp_log2(v) - 7, 0)) AS BIGINT)) % 128
    END
);

CREATE OR REPLACE MACRO deeptcp_errno_name(e) AS (
    CASE e
        WHEN 1 THEN 'EPERM' WHEN 4 THEN 'EINTR' WHEN 5 THEN 'EIO' WHEN 11 THEN 'EAGAIN'
        WHEN 12 THEN 'ENOMEM' WHEN 13 THEN 'EACCES' WHEN 22 THEN 'EINVAL' WHEN 32 THEN 'EPIPE'
        WHEN 71 THEN 'EPROTO' WHEN 90 THEN 'EMSGSIZE' WHEN 100 THEN 'ENETDOWN'
        WHEN 101 THEN 'ENETUNREACH' WHEN 102 THEN 'ENETRESET' WHEN 103 THEN 'ECONNABORTED'
        WHEN 104 THEN 'ECONNRESET' WHEN 105 THEN 'ENOBUFS' WHEN 107 THEN 'ENOTCONN'
        WHEN 108 THEN 'ESHUTDOWN' WHEN 110 THEN 'ETIMEDOUT' WHEN 111 THEN 'ECONNREFUSED'
        WHEN 112 THEN 'EHOSTDOWN' WHEN 113 THEN 'EHOSTUNREACH'
    END
);

CREATE OR REPLACE MACRO deeptcp_events(files) AS TABLE
WITH meta AS (
    SELECT file_name,
           max(CASE WHEN decode(key) = 'deeptcp.host' THEN decode(value) END) AS rec_host,
           max(CASE WHEN decode(key) = 'deeptcp.boot_id' THEN decode(value) END) AS boot_id
    FROM parquet_kv_metadata(files)
    GROUP BY file_name
),
-- The name tables record stores (format/SCHEMA.md, "Names").
cgroup_names AS (
    SELECT file_name, c.id, c.path AS cgroup, c.container_id, c.runtime AS container_runtime, c.pod_uid, c.unit
    FROM (SELECT file_name,
                 unnest(from_json(decode(value),
                        '[{"id":"UBIGINT","path":"VARCHAR","container_id":"VARCHAR","runtime":"VARCHAR","pod_uid":"VARCHAR","unit":"VARCHAR"}]')) AS c
          FROM parquet_kv_metadata(files) WHERE decode(key) = 'deeptcp.cgroups')
),
netns_names AS (
    SELECT file_name, n.inode, n.name AS netns_name
    FROM (SELECT file_name, unnest(from_json(decode(value), '[{"inode":"UINTEGER","name":"VARCHAR"}]')) AS n
          FROM parquet_kv_metadata(files) WHERE decode(key) = 'deeptcp.netns_names')
),
rows AS (
    SELECT r.*, coalesce(m.rec_host, 'unknown') AS rec_host, m.boot_id,
           c.cgroup, c.container_id, c.container_runtime, c.pod_uid, c.unit, n.netns_name
    FROM read_parquet(files, filename = true, file_row_number = true, union_by_name = true) r
    JOIN meta m ON r.filename = m.file_name
    LEFT JOIN cgroup_names c ON c.file_name = r.filename AND c.id = r.cgroup_id
    LEFT JOIN netns_names n ON n.file_name = r.filename AND n.inode = r.netns
)
-- analyze merges the inputs by ts, stably: file by file, then row order.
SELECT *, row_number() OVER (ORDER BY ts, filename, file_row_number) AS ord,
       max(ts) OVER (PARTITION BY filename) AS file_end_ts
FROM rows;

CREATE OR REPLACE MACRO deeptcp_conns(files) AS TABLE
WITH ev AS (
    -- Rows about a socket (an RST answering no socket has neither).
    SELECT * FROM deeptcp_events(files) WHERE cookie <> 0 OR newstate IS NOT NULL
),
first_of_cookie AS (
    SELECT rec_host, boot_id, cookie, min(ord) AS first_ord,
           min_by(netns, ord) AS netns, min_by(saddr, ord) AS saddr, min_by(sport, ord) AS sport,
           min_by(daddr, ord) AS daddr, min_by(dport, ord) AS dport
    FROM ev WHERE cookie <> 0 GROUP BY ALL
),
cookieless AS (
    SELECT rec_host, boot_id, netns, saddr, sport, daddr, dport, min(ord) AS first_ord
    FROM ev WHERE cookie = 0 GROUP BY ALL
),
-- A cookie-less socket is taken over by the first socket with a cookie
-- and the same addresses that starts after it.
adopted AS (
    SELECT c.rec_host, c.boot_id, c.netns, c.saddr, c.sport, c.daddr, c.dport,
           min_by(f.cookie, f.first_ord) AS cookie
    FROM cookieless c
    JOIN first_of_cookie f
      ON f.rec_host = c.rec_host AND f.boot_id IS NOT DISTINCT FROM c.boot_id AND f.netns = c.netns
     AND f.saddr = c.saddr AND f.sport = c.sport AND f.daddr = c.daddr AND f.dport = c.dport
     AND f.first_ord > c.first_ord
    GROUP BY ALL
),
keyed AS (
    SELECT ev.*,
           CASE WHEN ev.cookie <> 0 THEN 'c' || ev.cookie
                WHEN a.cookie IS NOT NULL THEN 'c' || a.cookie
                ELSE 't' || ev.netns || '|' || ev.saddr || '|' || ev.sport || '|' || ev.daddr || '|' || ev.dport
           END AS sock,
           coalesce(nullif(ev.cookie, 0), a.cookie, 0) AS sock_cookie,
           (ev.kind IN ('connect', 'accept')
            OR (ev.kind = 'state_change' AND (
                (ev.oldstate = 'CLOSE' AND ev.newstate IN ('SYN_SENT', 'LISTEN'))
                OR (ev.oldstate IN ('LISTEN', 'NEW_SYN_RECV') AND ev.newstate = 'SYN_RECV')))) AS is_start
    FROM ev
    LEFT JOIN adopted a
      ON ev.cookie = 0 AND a.rec_host = ev.rec_host AND a.boot_id IS NOT DISTINCT FROM ev.boot_id
     AND a.netns = ev.netns AND a.saddr = ev.saddr AND a.sport = ev.sport AND a.daddr = ev.daddr
     AND a.dport = ev.dport
),
-- The socket's state after each row (transitions only: other rows set it
-- only as a socket's first row, which the next step handles), and the
-- state before it.
stated AS (
    SELECT *,
           lag(last_state) OVER (PARTITION BY rec_host, boot_id, sock ORDER BY ord) AS state_before
    FROM (SELECT *,
                 last_value(CASE WHEN kind = 'state_change' THEN newstate END IGNORE NULLS)
                     OVER (PARTITION BY rec_host, boot_id, sock ORDER BY ord
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS last_state,
                 row_number() OVER (PARTITION BY rec_host, boot_id, sock ORDER BY ord) AS nth
          FROM keyed)
),
-- A start after the socket reached CLOSE begins a new lifetime.
lived AS (
    SELECT *,
           sum(CASE WHEN is_start AND state_before = 'CLOSE' THEN 1 ELSE 0 END)
               OVER (PARTITION BY rec_host, boot_id, sock ORDER BY ord
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS life
    FROM stated
),
-- The row that begins each lifetime's state path (its first row that
-- names a state), then what each row adds to the path.
pathed AS (
    SELECT *,
           ord = min(CASE WHEN kind IN ('state_change', 'connect') OR newstate IS NOT NULL THEN ord END)
                     OVER (PARTITION BY rec_host, boot_id, sock, life) AS path_start
    FROM lived
),
contrib AS (
    SELECT *,
           CASE WHEN kind = 'state_change' THEN coalesce(newstate, oldstate)
                WHEN path_start AND kind = 'connect' THEN 'SYN_SENT'
                WHEN path_start THEN newstate END AS last_elem,
           (kind = 'state_change' OR path_start) AS adds
    FROM pathed
),
prev AS (
    -- the last state the path holds before each row that adds to it
    SELECT *, lag(last_elem) OVER (PARTITION BY rec_host, boot_id, sock, life, adds ORDER BY ord) AS path_last
    FROM contrib
),
elems AS (
    SELECT *,
           CASE WHEN NOT adds THEN []
                WHEN kind = 'state_change' THEN
                    (CASE WHEN oldstate IS NOT NULL
                               AND oldstate IS DISTINCT FROM path_last
                          THEN [oldstate] ELSE [] END)
                    || (CASE WHEN newstate IS NOT NULL THEN [newstate] ELSE [] END)
                WHEN kind = 'connect' THEN ['CLOSE', 'SYN_SENT']
                ELSE [newstate] END AS path_add,
           -- the state this row enters, with a known time when it is a transition
           CASE WHEN kind = 'state_change' THEN newstate
                WHEN path_start AND kind = 'connect' THEN 'SYN_SENT'
                WHEN path_start THEN newstate END AS entered,
           (kind = 'state_change' OR (path_start AND kind = 'connect')) AS entered_at_known,
           CASE WHEN pid = 0 THEN NULL
                WHEN attribution = 'task' THEN 0 WHEN attribution = 'owner' THEN 1
                WHEN attribution = 'listener' THEN 2 WHEN attribution = 'snapshot' THEN 3
                WHEN attribution = 'backfill' THEN 7
                WHEN kind = 'connect' OR (kind = 'state_change' AND (
                         (oldstate = 'CLOSE' AND newstate IN ('SYN_SENT', 'LISTEN'))
                         OR (oldstate = 'LISTEN' AND newstate = 'CLOSE')
                         OR (oldstate = 'ESTABLISHED' AND newstate = 'FIN_WAIT1')
                         OR (oldstate = 'CLOSE_WAIT' AND newstate = 'LAST_ACK'))) THEN 4
                WHEN kind = 'destroy_sock' THEN 5 ELSE 6 END AS owner_rank,
           CASE WHEN kind = 'state_change' AND oldstate IN ('ESTABLISHED', 'SYN_RECV') AND newstate = 'FIN_WAIT1' THEN 'local'
                WHEN kind = 'state_change' AND oldstate = 'ESTABLISHED' AND newstate = 'CLOSE_WAIT' THEN 'remote'
                WHEN kind = 'fin_sent' THEN 'local' WHEN kind = 'fin_recv' THEN 'remote' END AS fin_side,
           CASE WHEN kind = 'reset_recv' THEN 'remote' WHEN kind = 'reset_sent' THEN 'local' END AS reset_side
    FROM prev
),
tracked AS (
    SELECT *,
           -- the state after this row (rows that are not transitions keep it)
           last_value(entered IGNORE NULLS)
               OVER (PARTITION BY rec_host, boot_id, sock, life ORDER BY ord
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS state_now
    FROM elems
),
closing AS (
    SELECT *,
           -- the row at which the lifetime reached CLOSE (its end), if any
           min(CASE WHEN state_now = 'CLOSE' AND adds THEN ord END)
               OVER (PARTITION BY rec_host, boot_id, sock, life) AS close_ord,
           -- zero-window stalls: a row showing a direction's window open
           -- ends that direction's stall; the rows between are one stall
           sum(CASE WHEN kind NOT IN ('zero_window_recv', 'zero_window_sent') AND snd_wnd > 0 THEN 1 ELSE 0 END)
               OVER (PARTITION BY rec_host, boot_id, sock, life ORDER BY ord
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS recv_run,
           sum(CASE WHEN kind NOT IN ('zero_window_recv', 'zero_window_sent') AND rcv_wnd > 0 THEN 1 ELSE 0 END)
               OVER (PARTITION BY rec_host, boot_id, sock, life ORDER BY ord
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS sent_run
    FROM tracked
),
stalls AS (
    SELECT rec_host AS host, boot_id, sock, life, count(*) AS zero_window_stalls,
           CAST(sum(stall_ns) AS BIGINT) AS zero_window_stall_ns
    FROM (SELECT rec_host, boot_id, sock, life, kind, CASE kind WHEN 'zero_window_recv' THEN recv_run ELSE sent_run END AS run,
                 epoch_ns(max(ts)) - epoch_ns(min(ts)) AS stall_ns
          FROM closing WHERE kind IN ('zero_window_recv', 'zero_window_sent')
          GROUP BY ALL)
    GROUP BY ALL
),
conn AS (
    SELECT rec_host AS host, boot_id, sock, life,
           min_by(filename, ord) AS first_file,
           min(ts) AS start_ts, min_by(mono_ns, ord) AS start_mono_ns,
           max(ts) AS last_ts,
           min_by(file_end_ts, ord) AS file_end_ts,
           min(ts) FILTER (WHERE ord = close_ord) AS close_ts,
           min(mono_ns) FILTER (WHERE ord = close_ord) AS close_mono,
           min(ts) FILTER (WHERE kind = 'destroy_sock') AS destroy_ts,
           min_by(mono_ns, ord) FILTER (WHERE kind = 'destroy_sock') AS destroy_mono,
           max(sock_cookie) AS cookie,
           coalesce(min_by(netns, ord) FILTER (WHERE netns <> 0), 0) AS netns,
           coalesce(min_by(cgroup_id, ord) FILTER (WHERE cgroup_id <> 0), 0) AS cgroup_id,
           min_by(cgroup, ord) FILTER (WHERE cgroup_id <> 0) AS cgroup,
           min_by(container_id, ord) FILTER (WHERE cgroup_id <> 0) AS container_id,
           min_by(container_runtime, ord) FILTER (WHERE cgroup_id <> 0) AS container_runtime,
           min_by(pod_uid, ord) FILTER (WHERE cgroup_id <> 0) AS pod_uid,
           min_by(unit, ord) FILTER (WHERE cgroup_id <> 0) AS unit,
           min_by(netns_name, ord) FILTER (WHERE netns <> 0) AS netns_name,
           min_by(family, ord) AS family,
           coalesce(min_by(saddr, ord) FILTER (WHERE saddr NOT IN ('0.0.0.0', '::')), min_by(saddr, ord)) AS saddr,
           coalesce(min_by(sport, ord) FILTER (WHERE sport <> 0), 0) AS sport,
           coalesce(min_by(daddr, ord) FILTER (WHERE daddr NOT IN ('0.0.0.0', '::')), min_by(daddr, ord)) AS daddr,
           coalesce(min_by(dport, ord) FILTER (WHERE dport <> 0), 0) AS dport,
           min_by(pid, [owner_rank, ord]) FILTER (WHERE owner_rank IS NOT NULL) AS pid,
           min_by(tid, [owner_rank, ord]) FILTER (WHERE owner_rank IS NOT NULL) AS tid,
           min_by(comm, [owner_rank, ord]) FILTER (WHERE owner_rank IS NOT NULL) AS comm,
           min_by(attribution, [owner_rank, ord]) FILTER (WHERE owner_rank IS NOT NULL) AS attribution,
           flatten(list(path_add ORDER BY ord)) AS state_path,
           count(*) AS events,
           count(*) FILTER (WHERE kind IN ('retransmit', 'retransmit_synack')) AS retransmits,
           count(*) FILTER (WHERE kind IN ('reset_recv', 'reset_sent')) AS resets,
           count(*) FILTER (WHERE kind IN ('zero_window_recv', 'zero_window_sent')) AS zero_windows,
           count(*) FILTER (WHERE kind = 'sock_error' AND sk_err <> 0) AS errors,
           max_by(bytes_acked, ord) FILTER (WHERE bytes_acked IS NOT NULL) AS bytes_acked,
           max_by(bytes_received, ord) FILTER (WHERE bytes_received IS NOT NULL) AS bytes_received,
           max_by(srtt_us, ord) FILTER (WHERE srtt_us > 0) AS srtt_us,
           min(srtt_us) FILTER (WHERE srtt_us > 0) AS srtt_min_us,
           max(srtt_us) FILTER (WHERE srtt_us > 0) AS srtt_max_us,
           max_by(snd_cwnd, ord) FILTER (WHERE snd_cwnd > 0 AND (close_ord IS NULL OR ord <= close_ord)) AS cwnd,
           min(ts) FILTER (WHERE entered IN ('SYN_SENT', 'SYN_RECV') AND entered_at_known) AS handshake_from,
           bool_or(kind = 'snapshot') AS has_snapshot,
           min_by(is_start, ord) AS first_is_start,
           bool_or(entered = 'LISTEN') AS listener,
           bool_or(entered = 'ESTABLISHED' OR kind = 'accept') AS established,
           bool_or(entered = 'SYN_SENT' OR kind = 'connect') AS syn_sent,
           bool_or(entered = 'SYN_RECV') AS syn_recv,
           bool_or((kind = 'reset_recv' AND (newstate = 'SYN_SENT' OR state_before = 'SYN_SENT'))
                   OR (kind = 'sock_error' AND sk_err = 111)) AS refused,
           bool_or(kind = 'sock_error' AND sk_err = 110) AS timed_out,
           min_by(reset_side, ord) FILTER (WHERE reset_side IS NOT NULL) AS first_reset,
           min_by(fin_side, ord) FILTER (WHERE fin_side IS NOT NULL) AS first_fin,
           min_by(sk_err, ord) FILTER (WHERE kind = 'sock_error' AND sk_err <> 0) AS first_err,
           bool_and(coalesce(entered, 'CLOSE') = 'CLOSE') AS only_close
    FROM closing
    GROUP BY rec_host, boot_id, sock, life
),
handshake AS (
    SELECT c.host, c.boot_id, c.sock, c.life,
           min(e.ts) FILTER (WHERE e.kind = 'state_change' AND e.newstate = 'ESTABLISHED'
                                   AND e.ts >= c.handshake_from) AS established_ts
    FROM conn c JOIN closing e ON e.rec_host = c.host AND e.boot_id IS NOT DISTINCT FROM c.boot_id
                               AND e.sock = c.sock AND e.life = c.life
    GROUP BY ALL
),
ended AS (
    SELECT c.*,
           h.established_ts,
           coalesce(z.zero_window_stalls, 0) AS zero_window_stalls,
           coalesce(z.zero_window_stall_ns, 0) AS zero_window_stall_ns,
           -- CLOSE, else destroyed, else still open
           coalesce(c.close_ts, c.destroy_ts) AS end_ts,
           CASE WHEN c.close_ts IS NOT NULL THEN c.close_mono ELSE c.destroy_mono END AS end_mono_ns
    FROM conn c JOIN handshake h USING (host, boot_id, sock, life)
    LEFT JOIN stalls z USING (host, boot_id, sock, life)
)
SELECT host,
       start_ts,
       start_mono_ns,
       end_ts,
       end_mono_ns,
       CAST(epoch_ns(coalesce(end_ts, greatest(file_end_ts, last_ts))) - epoch_ns(start_ts) AS BIGINT) AS duration_ns,
       end_ts IS NULL AS still_open,
       (NOT first_is_start OR has_snapshot) AS opened_before_recording,
       CASE
           WHEN end_ts IS NULL THEN 'still open at end of recording'
           WHEN listener AND NOT established THEN 'listener closed'
           WHEN refused AND NOT established THEN 'connection refused'
           WHEN timed_out THEN 'timeout (ETIMEDOUT)'
           WHEN first_reset = 'remote' THEN 'reset by peer'
           WHEN first_reset = 'local' THEN 'reset sent'
           WHEN first_fin = 'local' THEN 'local close'
           WHEN first_fin = 'remote' THEN 'remote close'
           WHEN first_err = 104 THEN 'reset by peer'
           WHEN first_err IS NOT NULL THEN 'error (' || coalesce(deeptcp_errno_name(first_err), CAST(first_err AS VARCHAR)) || ')'
           WHEN NOT established AND syn_sent THEN 'connect failed'
           WHEN NOT established AND syn_recv THEN 'handshake failed'
           ELSE 'closed (cause not recorded)'
       END AS close_reason,
       coalesce(pid, 0) AS pid,
       coalesce(tid, 0) AS tid,
       coalesce(comm, '') AS comm,
       coalesce(attribution, 'unknown') AS attribution,
       cookie, cgroup_id, netns, family, saddr, sport, daddr, dport,
       cgroup, container_id, container_runtime, pod_uid, unit, netns_name,
       state_path, events, retransmits, resets, zero_windows, errors, zero_window_stalls, zero_window_stall_ns,
       bytes_acked, bytes_received, srtt_us, srtt_min_us, srtt_max_us, cwnd,
       CAST(epoch_ns(established_ts) - epoch_ns(handshake_from) AS BIGINT) AS handshake_ns,
       listener AND NOT established AS is_listener
FROM ended
-- not a connection: created or bound, then freed, without anything happening
WHERE NOT (only_close AND retransmits = 0 AND resets = 0 AND errors = 0 AND zero_windows = 0
           AND NOT syn_sent AND NOT established);

CREATE OR REPLACE MACRO deeptcp_stats(files, by_key) AS TABLE
WITH c AS (
    SELECT *,
           CASE by_key WHEN 'daddr' THEN daddr
                   WHEN 'dport' THEN CAST(dport AS VARCHAR)
                   WHEN 'sport' THEN CAST(sport AS VARCHAR)
                   WHEN 'comm' THEN CASE WHEN pid <> 0 THEN comm END
                   WHEN 'pid' THEN CAST(nullif(pid, 0) AS VARCHAR)
                   WHEN 'cgroup' THEN coalesce(cgroup, CAST(nullif(cgroup_id, 0) AS VARCHAR))
                   WHEN 'netns' THEN coalesce(netns_name, CAST(nullif(netns, 0) AS VARCHAR))
                   WHEN 'host' THEN host
           END AS grp
    FROM deeptcp_conns(files)
    WHERE NOT is_listener
),
vals AS (
    SELECT grp, 'handshake_ns' AS metric, handshake_ns AS v FROM c WHERE handshake_ns IS NOT NULL
    UNION ALL SELECT grp, 'srtt_us', srtt_us FROM c WHERE srtt_us IS NOT NULL
    UNION ALL SELECT grp, 'duration_ns', duration_ns FROM c WHERE NOT still_open AND NOT opened_before_recording
),
-- Summaries (count, p50, p90, p99, max) over deeptcp_bucket buckets: a
-- nearest-rank percentile is the mean (rounded down) of the values in the
-- bucket its rank falls in; rank 1 is the minimum and the last rank the
-- maximum, exactly (as analyze/src/stats.rs).
buckets AS (
    SELECT grp, metric, deeptcp_bucket(v) AS b, count(*) AS n, sum(v) AS s, min(v) AS lo, max(v) AS hi
    FROM vals GROUP BY ALL
),
cumulative AS (
    SELECT *,
           sum(n) OVER (PARTITION BY grp, metric ORDER BY b) AS cum,
           sum(n) OVER (PARTITION BY grp, metric) AS total
    FROM buckets
),
ranked AS (
    SELECT *,
           CAST(ceil(total * 50 / 100.0) AS BIGINT) AS r50,
           CAST(ceil(total * 90 / 100.0) AS BIGINT) AS r90,
           CAST(ceil(total * 99 / 100.0) AS BIGINT) AS r99
    FROM cumulative
),
means AS (
    SELECT grp, metric, any_value(total) AS n, min(lo) AS vmin, max(hi) AS vmax,
           any_value(r50) AS r50, any_value(r90) AS r90, any_value(r99) AS r99,
           min_by(s // n, b) FILTER (WHERE cum >= r50) AS m50,
           min_by(s // n, b) FILTER (WHERE cum >= r90) AS m90,
           min_by(s // n, b) FILTER (WHERE cum >= r99) AS m99
    FROM ranked GROUP BY grp, metric
),
summary AS (
    SELECT grp, metric,
           {'count': CAST(n AS BIGINT),
            'p50': CAST(CASE WHEN r50 >= n THEN vmax WHEN r50 <= 1 THEN vmin ELSE least(vmax, greatest(vmin, m50)) END AS BIGINT),
            'p90': CAST(CASE WHEN r90 >= n THEN vmax WHEN r90 <= 1 THEN vmin ELSE least(vmax, greatest(vmin, m90)) END AS BIGINT),
            'p99': CAST(CASE WHEN r99 >= n THEN vmax WHEN r99 <= 1 THEN vmin ELSE least(vmax, greatest(vmin, m99)) END AS BIGINT),
            'max': CAST(vmax AS BIGINT)} AS s
    FROM means
),
groups AS (
    SELECT grp,
           count(*) AS connections,
           count(*) FILTER (WHERE still_open) AS still_open,
           count(*) FILTER (WHERE close_reason = 'connection refused') AS refused,
           count(*) FILTER (WHERE close_reason = 'timeout (ETIMEDOUT)') AS timeout,
           count(*) FILTER (WHERE close_reason IN ('reset by peer', 'reset sent')) AS reset,
           count(*) FILTER (WHERE close_reason LIKE 'error (%' OR close_reason IN ('connect failed', 'handshake failed')) AS error,
           sum(retransmits) AS retransmits,
           sum(zero_window_stalls) AS zero_window_stalls,
           sum(zero_window_stall_ns) AS zero_window_stall_ns
    FROM c GROUP BY grp
)
SELECT by_key AS "by", g.grp AS "group", connections, still_open,
       refused + timeout + reset + error AS failed,
       {'refused': refused, 'timeout': timeout, 'reset': reset, 'error': error} AS failures,
       retransmits,
       retransmits / connections AS retransmits_per_conn,
       zero_window_stalls, zero_window_stall_ns,
       (SELECT s FROM summary s WHERE s.grp IS NOT DISTINCT FROM g.grp AND s.metric = 'handshake_ns') AS handshake_ns,
       (SELECT s FROM summary s WHERE s.grp IS NOT DISTINCT FROM g.grp AND s.metric = 'srtt_us') AS srtt_us,
       (SELECT s FROM summary s WHERE s.grp IS NOT DISTINCT FROM g.grp AND s.metric = 'duration_ns') AS duration_ns
FROM groups g
ORDER BY connections DESC, g.grp;
