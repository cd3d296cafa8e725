#!/usr/bin/env python3
"""deeptcp benchmark driver. Run it through `scripts/bench [--quick] [--profile]`,
which installs the peers, builds the release binaries and cleans up on exit.

Stages (see bench/README.md for the method and its caveats):
  1-2. overhead, for each workload (`echo`, `lean`: record/examples/churn.rs):
       loopback churn rate with no tracer, with `record` (and other record
       builds: --compare LABEL=PATH), with an empty bpftrace probe (the floor),
       with libbpf-tools `tcpstates` and with a bpftrace one-liner,
       interleaved in rounds (order rotated every round), medians of the
       per-round ratios; tracer CPU time per event (wait4 rusage) and
       in-kernel BPF time per program (fdinfo run_time_ns with
       kernel.bpf_stats_enabled=1), BPF recursion misses.
  3.   completeness: the recording's rows of the churn's connections, per
       kind, vs the exact counts the workload makes (WORKLOADS), lost
       events; highest echo churn rate with zero loss at the default ring
       size.
  4.   bytes per event on disk.
  5.   analyzer: events/s and peak RSS of `analyze` (table, --conn, --json) on
       a synthetic recording vs DuckDB's equivalent queries on the same file.
  (--profile) perf profiles of record during churn and of analyze --conn.
"""
import argparse
import datetime
import glob
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = ["floor", "tcpstates", "bpftrace"]  # after record and its --compare builds
BPFTRACE_PROG = ('BEGIN { printf("ready\\n"); } '
                 'tracepoint:sock:inet_sock_set_state { @[args->newstate] = count(); }')
# The floor: an empty program on the same tracepoint. bpftrace 0.17 (Debian 12)
# has no rawtracepoint probe, so this is a classic tracepoint: the kernel still
# fills the trace record before it runs the (empty) program.
FLOOR_PROG = "tracepoint:sock:inet_sock_set_state {}"
CONFIG_NAMES = {"baseline": "none (baseline)", "record": "deeptcp record", "floor": "empty probe (floor)",
                "tcpstates": "libbpf-tools tcpstates", "bpftrace": "bpftrace count()"}

# What one churn connection leaves in a recording (record/examples/churn.rs,
# counted on Linux 6.18 by recording churns at full speed and paced, 2 and 4
# threads). Rows belong to a connection when the churn's port is on either
# side or the row has the cookie of a socket that has (the lean client's
# last rows carry dport 0). `kinds`: exact rows per connection by kind, plus
# the listener's own rows; `states`: state_change rows per connection not
# counting `racy_transitions`, plus the listener's two (CLOSE->LISTEN,
# LISTEN->CLOSE): the count tcpstates is checked against too; `racy_kinds`:
# reported, not checked (who wins a race decides whether they appear).
WORKLOADS = {
    # client CLOSE->SYN_SENT->ESTABLISHED->FIN_WAIT1->FIN_WAIT2->CLOSE, server
    # LISTEN->SYN_RECV->ESTABLISHED->CLOSE_WAIT->LAST_ACK->CLOSE: 18 rows.
    "echo": {
        "states": 10, "racy_transitions": [],
        "kinds": {"state_change": (10, 2), "destroy_sock": (2, 1), "fin_sent": (2, 0), "fin_recv": (2, 0),
                  "connect": (1, 0), "accept": (1, 0)},
        "racy_kinds": ["retransmit", "reset_sent"],
    },
    # client CLOSE->SYN_SENT->ESTABLISHED->CLOSE_WAIT->CLOSE (linger 0: RST,
    # ECONNRESET, destroyed), server LISTEN->SYN_RECV->ESTABLISHED->FIN_WAIT1->
    # CLOSE (the client's RST came first: reset_recv) or ->FIN_WAIT2->CLOSE (its
    # ACK of the FIN came first; ~0.5-2 %): 17 rows (16 + 1 racy).
    "lean": {
        "states": 8, "racy_transitions": [("FIN_WAIT1", "FIN_WAIT2")],
        "kinds": {"connect": (1, 0), "accept": (1, 0), "fin_sent": (1, 0), "fin_recv": (1, 0),
                  "sock_error": (1, 0), "destroy_sock": (2, 1)},
        "racy_kinds": ["reset_recv", "reset_sent", "retransmit"],
    },
}

# ---------------------------------------------------------------- utilities

_children = {}  # pid -> name, every process we started and have not reaped
_pidfile = None


def log(*a):
    try:
        print("bench:", *a, file=sys.stderr, flush=True)
    except (BrokenPipeError, OSError):
        pass  # e.g. `scripts/bench | tee` and Ctrl-C killed tee: keep going


def _save_pids():
    if _pidfile:
        with open(_pidfile + ".tmp", "w") as f:
            f.write("".join(f"{p}\n" for p in _children))
        os.replace(_pidfile + ".tmp", _pidfile)


def spawn(name, argv, stdout=None, stderr=None, peak=False, **kw):
    """Starts a child in its own session (process group), listed in the pid
    file. peak: also watch its peak RSS (p.peak, a PeakRss)."""
    p = subprocess.Popen(argv, stdout=stdout, stderr=stderr, start_new_session=True, **kw)
    _children[p.pid] = name
    _save_pids()
    if peak:
        p.peak = PeakRss(p.pid)
    return p


class PeakRss:
    """A child's peak resident set size: VmHWM in /proc/PID/status, polled every
    20 ms until the child exits. Not wait4's ru_maxrss: exec keeps the RSS the
    forked copy of this driver had as the floor of that number, so with
    DuckDB loaded every child (even /bin/true) reported 100-300 MB."""

    def __init__(self, pid):
        self.pid = pid
        self.kb = None
        self.me = str(os.getpid())
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def read(self):
        """VmHWM in kB; None once the child has exited (a zombie has no
        memory) or the pid is no longer our child."""
        try:
            with open(f"/proc/{self.pid}/status") as fh:
                f = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            return None
        if f.get("PPid", "").strip() != self.me or "VmHWM" not in f:
            return None
        return int(f["VmHWM"].split()[0])

    def run(self):
        while (kb := self.read()) is not None:
            self.kb = max(self.kb or 0, kb)
            time.sleep(0.02)

    def result(self):
        """The peak in kB (call after reaping the child)."""
        self.thread.join(1)
        return self.kb


def reap(p, timeout):
    """wait4 the child (so that we get its rusage); returns (status, rusage) or
    (None, None) on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            _children.pop(p.pid, None)
            _save_pids()
            return p.returncode, ru
        if time.monotonic() >= deadline:
            return None, None
        time.sleep(0.02)


def stop(p, sig=signal.SIGINT, timeout=60):
    """Signal the child, wait for it; SIGKILL (its whole session) if it hangs."""
    try:
        os.kill(p.pid, sig)
    except ProcessLookupError:
        pass
    rc, ru = reap(p, timeout)
    if rc is None:
        log(f"{_children.get(p.pid, p.pid)} did not stop after {sig!r}; killing it")
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        rc, ru = reap(p, 10)
    return rc, ru


def cleanup():
    for pid, name in list(_children.items()):
        try:
            os.killpg(pid, signal.SIGINT)
        except ProcessLookupError:
            continue
    t = time.monotonic() + 10
    for pid in list(_children):
        while time.monotonic() < t:
            try:
                r, _, _ = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if r == pid:
                break
            time.sleep(0.05)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
                os.wait4(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        _children.pop(pid, None)
    _save_pids()


def is_record(cfg):
    """`record` (this tree's build) or `record:LABEL` (--compare LABEL=PATH)."""
    return cfg == "record" or cfg.startswith("record:")


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def cpu_secs(ru):
    return ru.ru_utime + ru.ru_stime if ru else None


def bpf_stats(pid):
    """Sum of run_time_ns / run_cnt / recursion_misses over the BPF programs
    that pid holds, and the same per program id (run time and count need
    kernel.bpf_stats_enabled=1; recursion misses are always counted: runs the
    kernel skipped because the program was already running on that CPU, e.g.
    a softirq interrupting it)."""
    ns = cnt = progs = misses = 0
    per = {}
    seen = set()
    for fi in glob.glob(f"/proc/{pid}/fdinfo/*"):
        try:
            txt = open(fi).read()
        except OSError:
            continue
        if "prog_type:" not in txt:
            continue
        i = re.search(r"prog_id:\s+(\d+)", txt)
        # A program held by several descriptors (record keeps a second one
        # to read recursion_misses after detaching) counts once.
        if i:
            if int(i.group(1)) in seen:
                continue
            seen.add(int(i.group(1)))
        progs += 1
        m = re.search(r"run_time_ns:\s+(\d+)", txt)
        c = re.search(r"run_cnt:\s+(\d+)", txt)
        r = re.search(r"recursion_misses:\s+(\d+)", txt)
        miss = int(r.group(1)) if r else 0
        misses += miss
        if m and c:
            ns += int(m.group(1))
            cnt += int(c.group(1))
            if i:
                per[int(i.group(1))] = (int(m.group(1)), int(c.group(1)), miss)
    return {"progs": progs, "run_time_ns": ns, "run_cnt": cnt, "misses": misses, "per": per}


def prog_names():
    """BPF program id -> name, from bpftool (empty without it)."""
    bt = shutil.which("bpftool") or ("/usr/sbin/bpftool" if os.path.exists("/usr/sbin/bpftool") else None)
    if not bt:
        return {}
    try:
        r = subprocess.run([bt, "-j", "prog", "show"], capture_output=True, text=True, timeout=30)
        return {p["id"]: p.get("name", "?") for p in json.loads(r.stdout or "[]")}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


STATS = "/proc/sys/kernel/bpf_stats_enabled"


def set_bpf_stats(on):
    """kernel.bpf_stats_enabled: per-program run time/count. It costs two clock
    reads per program run, so the overhead rounds run without it."""
    with open(STATS, "w") as fh:
        fh.write("1" if on else "0")


class Nudger:
    """A loopback listener to make TCP state changes on demand (readiness probes)."""

    def __init__(self):
        self.l = socket.socket()
        self.l.bind(("127.0.0.1", 0))
        self.l.listen(64)
        self.l.setblocking(False)

    def nudge(self):
        try:
            c = socket.create_connection(self.l.getsockname(), timeout=1)
            c.close()
            while True:
                a, _ = self.l.accept()
                a.close()
        except (BlockingIOError, OSError):
            pass


def open_sockets(port):
    """IPv4 TCP sockets with this port on either side, not counting TIME_WAIT
    (from /proc/net/tcp)."""
    suffix = f":{port:04X}"
    n = 0
    with open("/proc/net/tcp") as fh:
        next(fh)
        for line in fh:
            f = line.split()
            if len(f) > 3 and f[3] != "06" and (f[1].endswith(suffix) or f[2].endswith(suffix)):
                n += 1
    return n


def wait_closed(port, timeout):
    """Waits until the churn's sockets are gone; returns the seconds waited."""
    t0 = time.monotonic()
    while open_sockets(port) and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    return time.monotonic() - t0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def fmt(x, spec=".2f", none="–"):
    return none if x is None else format(x, spec)


# ------------------------------------------------------------------ tracers

class Bench:
    def __init__(self, a):
        self.a = a
        self.bin = a.bin_dir
        self.work = a.work
        self.nudger = Nudger()
        self.results = {}
        self.port = free_port()
        self.runs = []

    # -- churn
    def churn(self, workload, secs=None, rate=None, threads=None):
        argv = [os.path.join(self.bin, "examples", "churn"), "--secs", str(secs or self.a.secs),
                "--threads", str(threads or self.a.threads), "--port", str(self.port),
                "--workload", workload]
        if rate:
            argv += ["--rate", f"{rate:.0f}"]
        p = spawn("churn", argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.last_churn_pid = p.pid
        out = p.stdout.read()
        rc, _ = reap(p, (secs or self.a.secs) + 120)
        if rc != 0:
            raise RuntimeError(f"churn failed ({rc}): {out}")
        return json.loads(out)

    # -- tracer start/ready/stop
    def record_bin(self, cfg):
        """The record binary of a configuration: `record` is this tree's build,
        `record:LABEL` the copy of --compare LABEL=PATH."""
        if cfg == "record":
            return os.path.join(self.bin, "record")
        return self.a.compare[cfg.split(":", 1)[1]]

    def start_tracer(self, cfg, tag, stats=False, bin_dir=None):
        out = os.path.join(self.work, f"{cfg}-{tag}.out")
        err = os.path.join(self.work, f"{cfg}-{tag}.err")
        fo, fe = open(out, "w"), open(err, "w")
        parquet = None
        if is_record(cfg):
            parquet = os.path.join(self.work, f"{cfg}-{tag}.parquet")
            if os.path.exists(parquet):
                os.remove(parquet)
            exe = os.path.join(bin_dir, "record") if bin_dir else self.record_bin(cfg)
            argv = [exe, "-o", parquet, "--status-interval", "1"]
            if self.a.ring_size:
                argv += ["--ring-size", self.a.ring_size]
        elif cfg == "tcpstates":
            argv = [self.a.tcpstates]
        elif cfg == "bpftrace":
            argv = [self.a.bpftrace, "-B", "line", "-e", BPFTRACE_PROG]
        elif cfg == "floor":
            argv = [self.a.bpftrace, "-e", FLOOR_PROG]
        else:
            raise ValueError(cfg)
        p = spawn(cfg, argv, stdout=fo, stderr=fe, peak=True)
        fo.close()
        fe.close()
        t = {"cfg": cfg, "p": p, "out": out, "err": err, "parquet": parquet, "stats": stats}
        self.wait_ready(t)
        return t

    def wait_ready(self, t, timeout=60):
        deadline = time.monotonic() + timeout
        p = t["p"]
        while time.monotonic() < deadline:
            if p.poll() is not None:
                _children.pop(p.pid, None)
                raise RuntimeError(f"{t['cfg']} exited early ({p.returncode}): "
                                   + open(t["err"]).read()[-2000:])
            if is_record(t["cfg"]):
                if "record: tracing" in open(t["err"]).read():
                    break
            else:
                # Attached once one of its programs has run (needs bpf_stats_enabled=1).
                set_bpf_stats(True)
                self.nudger.nudge()
                if bpf_stats(p.pid)["run_cnt"] > 0:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{t['cfg']} not ready after {timeout} s")
        set_bpf_stats(t.get("stats", False))
        time.sleep(self.a.settle)
        t["bpf0"] = bpf_stats(p.pid)

    def stop_tracer(self, t):
        bpf1 = bpf_stats(t["p"].pid)
        names = prog_names()
        t["bpf_per_prog"] = {}
        for pid_, (ns, cnt, miss) in bpf1["per"].items():
            ns0, cnt0, miss0 = t["bpf0"]["per"].get(pid_, (0, 0, 0))
            if cnt - cnt0 > 0 or miss - miss0 > 0:
                name = names.get(pid_, str(pid_))
                a, b, c = t["bpf_per_prog"].get(name, (0, 0, 0))
                t["bpf_per_prog"][name] = (a + ns - ns0, b + cnt - cnt0, c + miss - miss0)
        # record may take a while to finish its file; the peers have nothing to
        # finish (bpftrace 0.17 has been seen to hang on SIGINT once in a while).
        rc, ru = stop(t["p"], signal.SIGINT, timeout=120 if is_record(t["cfg"]) else 30)
        t["rc"] = rc
        t["cpu_s"] = cpu_secs(ru)
        t["maxrss_kb"] = t["p"].peak.result()
        t["bpf_ns"] = bpf1["run_time_ns"] - t["bpf0"]["run_time_ns"]
        t["bpf_runs"] = bpf1["run_cnt"] - t["bpf0"]["run_cnt"]
        t["bpf_misses"] = bpf1["misses"] - t["bpf0"]["misses"]
        t["bpf_progs"] = bpf1["progs"]
        return t

    # -- one measured run
    def run_one(self, cfg, tag, workload="echo", rate=None, threads=None, secs=None, stats=False):
        r = {"cfg": cfg, "tag": tag, "workload": workload, "rate_limit": rate, "bpf_stats": stats}
        t = None
        if cfg != "baseline":
            t = self.start_tracer(cfg, tag, stats=stats)
        try:
            c = self.churn(workload, secs=secs, rate=rate, threads=threads)
            if t:
                # Under load a RST can be dropped (loopback backlog): the lean
                # server's socket then waits in FIN_WAIT1 for its FIN's
                # retransmission. Its last rows come once it is gone.
                r["close_wait_s"] = wait_closed(self.port, 5)
        finally:
            if t:
                time.sleep(0.3)  # let the last FIN/ACKs and destroys fire
                self.stop_tracer(t)
                set_bpf_stats(False)
        r.update(conn_per_sec=c["conn_per_sec"], connections=c["connections"],
                 churn_errors=c["errors"] + c["server_errors"], port=c["port"])
        w = WORKLOADS[workload]
        expected = w["states"] * c["connections"] + 2
        r["expected_state_changes"] = expected
        if t:
            r.update(tracer_rc=t["rc"], cpu_s=t["cpu_s"], maxrss_kb=t["maxrss_kb"], bpf_progs=t["bpf_progs"],
                     bpf_misses=t["bpf_misses"])
        conns = max(c["connections"], 1)
        if t and stats:
            r.update(bpf_ns=t["bpf_ns"], bpf_runs=t["bpf_runs"], bpf_ns_per_conn=t["bpf_ns"] / conns)
            r["bpf_per_prog"] = {
                n: {"runs_per_conn": round(cnt / conns, 2), "ns_per_run": round(ns / cnt) if cnt else None,
                    "ns_per_conn": round(ns / conns), "misses": miss}
                for n, (ns, cnt, miss) in sorted(t["bpf_per_prog"].items(), key=lambda x: -x[1][0])}
        elif t:
            r["bpf_misses_per_prog"] = {n: v[2] for n, v in t["bpf_per_prog"].items() if v[2]}
        if t:
            getattr(self, "finish_record" if is_record(cfg) else f"finish_{cfg}")(t, r)
            if r.get("events"):
                r["cpu_us_per_event"] = 1e6 * t["cpu_s"] / r["events"] if t["cpu_s"] is not None else None
            if r.get("port_state_changes") is not None and "completeness" not in r:
                r["completeness"] = r["port_state_changes"] / expected
        self.runs.append(r)
        log(f"{tag:>12} {workload:<4} {cfg:<12} {r['conn_per_sec']:9.0f} conn/s"
            + (f"  events={r.get('events')} lost={r.get('lost')} missed={r.get('bpf_misses')} "
               f"port_states={r.get('port_state_changes')}/{expected}" if t else ""))
        return r

    def finish_record(self, t, r):
        import duckdb
        err = open(t["err"]).read()
        m = re.search(r"record: (\d+) events written to .* \(([^)]*)\), (\d+) lost", err)
        f = t["parquet"]
        r["summary_line"] = m.group(0) if m else None
        # Per-second status lines: when were events lost (seconds since start)?
        r["lost_timeline"] = [
            {"line": i + 1, "lost_total": int(x.group(2)), "events": int(x.group(1))}
            # "record: N rows written (R/s), M records received, F filtered, L lost …"
            # (older builds: "record: N events (…), L lost")
            for i, x in enumerate(re.finditer(
                r"^record: (\d+) (?:rows written|events) \([^)]*\), (?:.*?, )?(\d+) lost", err, re.M))
            if int(x.group(2)) > 0][:20]
        if t["rc"] != 0 or not os.path.exists(f):
            r["error"] = f"record exited {t['rc']}: {err[-1000:]}"
            return
        con = duckdb.connect()
        kv = dict(con.execute(
            "SELECT key::varchar, value::varchar FROM parquet_kv_metadata(?) WHERE key::varchar LIKE 'deeptcp.%'",
            [f]).fetchall())
        w = WORKLOADS[r["workload"]]
        # (DDL takes no prepared parameters: the path and port go in as literals.)
        con.execute("CREATE VIEW ev AS SELECT * FROM read_parquet('{}')".format(f.replace("'", "''")))
        # The churn's rows: its port on either side, or the cookie of one of
        # its sockets (cookie 0 = unknown socket: port only). Not the start-up
        # snapshot: the port is the same in every run, so the TIME_WAIT
        # sockets of earlier runs are in it.
        p = int(r["port"])
        con.execute(f"CREATE TEMP TABLE churn_rows AS SELECT kind, oldstate, newstate FROM ev "
                    f"WHERE kind <> 'snapshot' AND (sport = {p} OR dport = {p} OR (cookie <> 0 AND cookie IN "
                    f"(SELECT cookie FROM ev WHERE (sport = {p} OR dport = {p}) AND cookie <> 0)))")
        racy = " AND ".join(f"NOT (oldstate = '{o}' AND newstate = '{n}')" for o, n in w["racy_transitions"])
        r["port_state_changes"] = con.execute(
            "SELECT count(*) FROM churn_rows WHERE kind = 'state_change'" + (f" AND {racy}" if racy else "")
        ).fetchone()[0]
        kinds = dict(con.execute("SELECT kind, count(*) FROM churn_rows GROUP BY kind").fetchall())
        r["port_events"] = sum(kinds.values())
        n = r["connections"]
        r["kind_rows"] = kinds
        r["kind_rows_per_conn"] = {k: round(v / max(n, 1), 4) for k, v in sorted(kinds.items(), key=lambda x: -x[1])}
        # Exact checks: every deterministic kind, and the state changes minus the racy transitions.
        checks = {k: (kinds.get(k, 0), per * n + extra) for k, (per, extra) in w["kinds"].items()}
        checks["state_change (not racy)"] = (r["port_state_changes"], r["expected_state_changes"])
        r["kind_checks"] = {k: {"rows": got, "expected": exp} for k, (got, exp) in checks.items()}
        r["kinds_exact"] = all(got == exp for got, exp in checks.values())
        r["completeness"] = min(got / exp for got, exp in checks.values() if exp)
        r["racy_rows_per_conn"] = {k: round(kinds.get(k, 0) / max(n, 1), 4) for k in w["racy_kinds"]}
        for o, nw in w["racy_transitions"]:
            r["racy_rows_per_conn"][f"{o}->{nw}"] = round(con.execute(
                "SELECT count(*) FROM churn_rows WHERE kind = 'state_change' AND oldstate = ? AND newstate = ?",
                [o, nw]).fetchone()[0] / max(n, 1), 4)
        rows = con.execute("SELECT count(*) FROM ev").fetchone()[0]
        r["events"] = rows
        r["snapshot_rows"] = int(kv.get("deeptcp.snapshot_sockets", 0))
        r["lost"] = int(kv.get("deeptcp.lost_events", m.group(3) if m else -1))
        r["lost_summary"] = int(m.group(3)) if m else None
        r["file_bytes"] = os.path.getsize(f)
        r["bytes_per_event"] = r["file_bytes"] / rows if rows else None
        if not self.a.keep:
            os.remove(f)

    def finish_tcpstates(self, t, r):
        p = str(r["port"])
        racy = set(WORKLOADS[r["workload"]]["racy_transitions"])
        n = port_n = 0
        with open(t["out"], errors="replace") as fh:
            for line in fh:
                tok = line.split()
                if len(tok) < 10 or tok[0] == "SKADDR":
                    continue
                n += 1
                if (tok[-5] == p or tok[-7] == p) and (tok[-4], tok[-2]) not in racy:
                    port_n += 1
        err = open(t["err"], errors="replace").read()
        lost = sum(int(x) for x in re.findall(r"lost (\d+) events", err))
        r.update(events=n, port_state_changes=port_n, lost=lost)
        if not self.a.keep:
            os.remove(t["out"])

    def finish_bpftrace(self, t, r):
        n = 0
        for m in re.finditer(r"^@\[\d+\]: (\d+)$", open(t["out"]).read(), re.M):
            n += int(m.group(1))
        r.update(events=n, port_state_changes=None, lost=0)

    def finish_floor(self, t, r):
        """The empty probe keeps nothing: no events, nothing to lose."""
        r.update(events=None, port_state_changes=None, lost=0)

    # ------------------------------------------------------------ stage 1-2-4
    def configs(self):
        """baseline, record, record:LABEL (--compare), floor, tcpstates, bpftrace;
        minus --skip."""
        a = self.a
        cfgs = ["baseline", "record"] + [f"record:{label}" for label in a.compare] + PEERS
        return [c for c in cfgs if c not in a.skip]

    def stage_overhead(self):
        a = self.a
        cfgs = self.configs()
        tracers = cfgs[1:]
        per_round = {w: [] for w in a.workloads}
        for k in range(a.rounds):
            # Per workload: B T1 B T2 B … B: every tracer run sits between two
            # baselines of its own workload and is compared with their mean
            # (cancels linear drift); the tracer order rotates every round.
            order = tracers[k % len(tracers):] + tracers[:k % len(tracers)] if tracers else []
            seq = ["baseline"]
            for t in order:
                seq += [t, "baseline"]
            for w in a.workloads:
                done = []
                for i, cfg in enumerate(seq):
                    done.append(self.run_one(cfg, f"{w}.r{k}.{i}", workload=w))
                    time.sleep(a.pause)
                rr = {"baselines": [r for r in done if r["cfg"] == "baseline"]}
                for i, r in enumerate(done):
                    if r["cfg"] != "baseline":
                        ref = (done[i - 1]["conn_per_sec"] + done[i + 1]["conn_per_sec"]) / 2
                        r["baseline_ref"] = ref
                        r["ratio"] = r["conn_per_sec"] / ref
                        rr[r["cfg"]] = r
                rr["baseline"] = {"conn_per_sec": median([b["conn_per_sec"] for b in rr["baselines"]]),
                                  "ratio": 1.0}
                per_round[w].append(rr)
        # BPF cost pass: one more run per workload and tracer with
        # kernel.bpf_stats_enabled=1, kept out of the ratios above (the
        # statistics themselves cost time).
        cost = {w: {} for w in a.workloads}
        for w in a.workloads:
            for cfg in tracers:
                cost[w][cfg] = self.run_one(cfg, f"{w}.bpfcost", workload=w, stats=True)
                time.sleep(a.pause)
        out = {"rounds": a.rounds, "secs": a.secs, "threads": a.threads, "workloads": a.workloads,
               "configs": cfgs,
               "order": "per round and workload B T1 B T2 … B, tracer order rotated every round; ratio to "
                        "the mean of the two neighbouring baselines"}
        for w in a.workloads:
            out[w] = self.summarize(cfgs, per_round[w], cost[w])
        self.results["overhead"] = out

    @staticmethod
    def summarize(cfgs, per_round, cost):
        """One workload's rounds: medians over rounds per configuration."""
        out = {"per_config": {}}
        base = [b["conn_per_sec"] for rr in per_round for b in rr["baselines"]]
        for cfg in cfgs:
            runs = [rr[cfg] for rr in per_round]
            ratios = [rr[cfg]["ratio"] for rr in per_round]
            d = {
                "conn_per_sec_median": median([x["conn_per_sec"] for x in runs]),
                "conn_per_sec_runs": [x["conn_per_sec"] for x in runs],
                "ratio_median": median(ratios),
                "ratio_runs": ratios,
            }
            if cfg != "baseline":
                evs = [x.get("events") for x in runs]
                d.update(
                    events_median=median(evs),
                    lost_runs=[x.get("lost") for x in runs],
                    bpf_misses_runs=[x.get("bpf_misses") for x in runs],
                    cpu_s_median=median([x.get("cpu_s") for x in runs]),
                    cpu_us_per_event_median=median([x.get("cpu_us_per_event") for x in runs]),
                    maxrss_kb_median=median([x.get("maxrss_kb") for x in runs]),
                )
                cr = cost.get(cfg, {})
                conns = max(cr.get("connections") or 0, 1)
                d["bpf_cost_run"] = {
                    "conn_per_sec": cr.get("conn_per_sec"),
                    "ns_per_conn": cr.get("bpf_ns_per_conn"),
                    "ns_per_run": cr["bpf_ns"] / cr["bpf_runs"] if cr.get("bpf_runs") else None,
                    "runs_per_conn": cr["bpf_runs"] / conns if cr.get("bpf_runs") else None,
                    "misses": cr.get("bpf_misses"),
                    "per_prog": cr.get("bpf_per_prog") or {},
                }
                comp = [x["completeness"] for x in runs if x.get("completeness") is not None]
                if comp:
                    d["completeness_runs"] = comp
                    d["completeness_min"] = min(comp)
                if is_record(cfg):
                    d["kinds_exact_runs"] = [x.get("kinds_exact") for x in runs]
                    d["kind_checks_runs"] = [x.get("kind_checks") for x in runs]
                    d["bytes_per_event_median"] = median([x.get("bytes_per_event") for x in runs])
                    d["file_bytes_median"] = median([x.get("file_bytes") for x in runs])
                    d["snapshot_rows_median"] = median([x.get("snapshot_rows") for x in runs])
                    d["events_per_conn_on_port"] = median(
                        [x["port_events"] / x["connections"] for x in runs if x.get("port_events")])
                    good = [x for x in runs if x.get("kind_rows")]
                    if good:
                        kinds = sorted({k for x in good for k in x["kind_rows"]})
                        d["kind_rows_per_conn_median"] = {
                            k: median([x["kind_rows"].get(k, 0) / x["connections"] for x in good]) for k in kinds}
                        d["racy_rows_per_conn_median"] = {
                            k: median([x["racy_rows_per_conn"].get(k, 0) for x in good])
                            for k in good[0]["racy_rows_per_conn"]}
            out["per_config"][cfg] = d
        out["baseline_conn_per_sec_median"] = median(base)
        out["baseline_conn_per_sec_runs"] = base
        out["per_config"]["baseline"]["conn_per_sec_runs"] = base
        out["per_config"]["baseline"]["conn_per_sec_median"] = median(base)
        # A/B: record against each --compare build. Two estimates: the ratio
        # of the two × baseline medians, and per round the two runs' rates
        # directly (they ran in the same round, with one baseline in between).
        out["ab"] = {}
        rec = out["per_config"].get("record")
        for cfg in [c for c in cfgs if c.startswith("record:")]:
            other = out["per_config"][cfg]
            if not rec or not rec["ratio_median"] or not other["ratio_median"]:
                continue
            direct = [x / y for x, y in zip(rec["conn_per_sec_runs"], other["conn_per_sec_runs"])]
            out["ab"][cfg] = {"ratio_of_medians": rec["ratio_median"] / other["ratio_median"],
                              "direct_runs": direct, "direct_median": median(direct)}
        return out

    # --------------------------------------------------------------- stage 3
    def stage_zero_loss(self):
        """Highest echo churn rate with zero lost events at the default ring size."""
        a = self.a
        if "record" in a.skip:
            return
        steps = []
        ok = lambda r: r.get("lost") == 0 and r.get("port_state_changes") == r["expected_state_changes"]
        # 1. As hard as the generator can push, with twice the threads.
        r = self.run_one("record", "zl-max", threads=2 * a.threads)
        steps.append({"rate_limit": None, "threads": 2 * a.threads, "achieved": r["conn_per_sec"],
                      "lost": r.get("lost"), "complete": ok(r)})
        res = {"ring_size": a.ring_size or "default (8M)", "steps": steps}
        if ok(r):
            res["max_zero_loss_conn_per_sec"] = r["conn_per_sec"]
            res["bound"] = "generator (no loss at the highest rate this machine can generate)"
        else:
            lo, hi = 0.0, r["conn_per_sec"]
            best = None
            for i in range(a.bisect_steps):
                mid = (lo + hi) / 2 if lo else hi * 0.5
                r = self.run_one("record", f"zl-{i}", rate=mid)
                good = ok(r) and r["conn_per_sec"] >= 0.95 * mid
                steps.append({"rate_limit": mid, "achieved": r["conn_per_sec"], "lost": r.get("lost"),
                              "complete": ok(r)})
                if good:
                    lo, best = mid, r["conn_per_sec"]
                else:
                    hi = mid
            res["max_zero_loss_conn_per_sec"] = best
            res["bound"] = f"bisection, {a.bisect_steps} steps, between {lo:.0f} and {hi:.0f} conn/s"
        ev = (self.results.get("overhead", {}).get("echo", {}).get("per_config", {}).get("record", {})
              .get("events_per_conn_on_port"))
        if ev and res.get("max_zero_loss_conn_per_sec"):
            res["max_zero_loss_events_per_sec_approx"] = res["max_zero_loss_conn_per_sec"] * ev
        self.results["zero_loss"] = res

    # --------------------------------------------------------------- stage 5
    def synth_file(self):
        n = self.a.synth_events
        src = os.path.join(ROOT, "format", "examples", "synth.rs")
        exe = os.path.join(self.bin, "examples", "synth")
        if not os.path.exists(exe):
            # Not there when scripts/bench started: check again now.
            if not os.path.exists(src):
                return None, "skipped: generator missing (format/examples/synth.rs)"
            if not self.a.no_build:
                b = subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "deeptcp-format",
                                    "--example", "synth"], cwd=ROOT, capture_output=True, text=True)
                if b.returncode != 0:
                    return None, "skipped: generator does not build: " + b.stderr[-500:]
            built = os.path.join(self.a.cargo_release_dir or "", "examples", "synth")
            if not os.path.exists(built):
                return None, "skipped: generator not built"
            shutil.copy2(built, exe)
        f = os.path.join(self.work, f"synth-{n}.parquet")
        if os.path.exists(f) and os.path.getmtime(f) > os.path.getmtime(exe):
            return f, None
        if os.path.exists(f):
            os.remove(f)
        log(f"generating {n} synthetic events into {f}")
        t0 = time.perf_counter()
        g = subprocess.run([exe, "--events", str(n), "--out", f], capture_output=True, text=True)
        if g.returncode != 0 or not os.path.exists(f):
            return None, "skipped: generator failed: " + (g.stderr or g.stdout)[-500:]
        self.results.setdefault("analyzer", {})["synth_secs"] = time.perf_counter() - t0
        return f, None

    def timed(self, name, argv, capture=False):
        """Runs argv to completion; wall time and CPU from wait4, peak RSS from
        VmHWM (PeakRss). With capture, stdout is parsed as the JSON line of
        bench/analyze_duckdb.py (query-only time, threads)."""
        t0 = time.perf_counter()
        p = spawn(name, argv, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                  stderr=subprocess.PIPE, peak=True)
        if capture:
            # Small outputs: read stdout fully, then stderr.
            out = p.stdout.read()
        err = p.stderr.read()
        rc, ru = reap(p, 3600)
        s = {"rc": rc, "wall_s": time.perf_counter() - t0, "cpu_s": cpu_secs(ru),
             "maxrss_mb": p.peak.result() / 1024 if p.peak.result() else None,
             "stderr": err.decode(errors="replace")[-500:]}
        if capture and rc == 0:
            j = json.loads(out)
            s["query_s"] = j["secs"]
            s["threads"] = j.get("threads")
        return s

    def stage_analyzer(self):
        a = self.a
        res = self.results.setdefault("analyzer", {})
        f, why = self.synth_file()
        if not f:
            res["skipped"] = why
            log(why)
            return
        import duckdb
        con = duckdb.connect()
        n = con.execute("SELECT count(*) FROM read_parquet(?)", [f]).fetchone()[0]
        res.update(file=f, events=n, file_bytes=os.path.getsize(f),
                   bytes_per_event=os.path.getsize(f) / n if n else None)
        ana = os.path.join(self.bin, "analyze")
        helptext = subprocess.run([ana, "--help"], capture_output=True, text=True).stdout
        modes = {"table": [], "conn": ["--conn"], "json": ["--json"]}
        tools = {}
        for mode, flags in modes.items():
            if any(fl not in helptext for fl in flags):
                tools[f"analyze {mode}"] = None
                res[f"analyze_{mode}"] = {"skipped": f"analyze has no {' '.join(flags)} yet"}
                continue
            tools[f"analyze {mode}"] = [ana] + flags + [f]
        dscript = os.path.join(ROOT, "bench", "analyze_duckdb.py")
        for mode in modes:
            tools[f"duckdb {mode}"] = [sys.executable, dscript, f, mode]
        tools["duckdb conn 1 thread"] = [sys.executable, dscript, f, "conn", "--threads", "1"]
        samples = {k: [] for k, v in tools.items() if v}
        for i in range(a.analyzer_repeats):
            for k, argv in tools.items():
                if not argv:
                    continue
                s = self.timed(k, argv, capture=k.startswith("duckdb"))
                if s["rc"] != 0:
                    s["error"] = s["stderr"]
                samples[k].append(s)
                log(f"{k:<22} {s['wall_s']:7.2f} s  {s['maxrss_mb']:7.1f} MB  rc={s['rc']}")
        for k, ss in samples.items():
            good = [s for s in ss if s["rc"] == 0]
            key = k.replace(" ", "_")
            if not good:
                res[key] = {"error": ss[-1].get("stderr") if ss else "not run"}
                continue
            secs = median([s.get("query_s", s["wall_s"]) for s in good])
            res[key] = {
                "secs_median": secs,
                "wall_s_runs": [s["wall_s"] for s in good],
                "events_per_sec": n / secs if secs else None,
                "maxrss_mb_max": max(s["maxrss_mb"] for s in good),
                "cpu_s_median": median([s["cpu_s"] for s in good]),
                "cpu_s_runs": [s["cpu_s"] for s in good],
            }
            if "query_s" in good[0]:
                res[key]["query_s_runs"] = [s["query_s"] for s in good]
                res[key]["threads"] = good[0].get("threads")
        conn_ratios(res)

    # ------------------------------------------------------------- profiling
    def stage_profile(self):
        perf = shutil.which("perf")
        res = self.results.setdefault("profile", {})
        if not perf:
            res["skipped"] = "perf not installed"
            return
        pdir = os.path.join(ROOT, "bench", "profiles")
        os.makedirs(pdir, exist_ok=True)
        data = os.path.join(self.work, "perf-record.data")
        # Release binaries are stripped; scripts/bench --profile copies the
        # profiling profile's (release code + symbols) to bin/profiling.
        pbin = os.path.join(self.bin, "profiling")
        if not all(os.path.exists(os.path.join(pbin, b)) for b in ("record", "analyze")):
            res["warning"] = "no profiling binaries (cargo build --profile profiling): stripped, no symbols"
            pbin = self.bin
        res["bin_dir"] = pbin
        # System-wide during churn with record: kernel BPF programs, ring buffer,
        # the drain thread ("record") and the writer thread ("writer").
        t = self.start_tracer("record", "prof", bin_dir=pbin)
        pp = spawn("perf", [perf, "record", "-q", "-e", "cpu-clock", "-F", "1999", "-a", "-o", data],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            c = self.churn("echo")
        finally:
            stop(pp, signal.SIGINT)
            time.sleep(0.3)
            self.stop_tracer(t)
        res["record_churn_conn_per_sec"] = c["conn_per_sec"]
        # Only our two processes (by pid: other processes on the machine may
        # also be called `record`, e.g. the live tests' debug builds);
        # percentages are of the selected samples.
        rp, cp = t["p"].pid, self.last_churn_pid
        rel = ["--percentage", "relative"]
        reports = {
            "record-threads.txt": ["--pid", f"{rp},{cp}", "--sort", "pid,comm"] + rel,
            "record-churn-kernel.txt": ["--pid", str(cp), "--sort", "sym", "--percent-limit", "0.4"] + rel,
            "record-writer.txt": ["--pid", str(rp), "--comms", "writer", "--sort", "dso,sym",
                                  "--percent-limit", "0.7"] + rel,
            "record-drain.txt": ["--pid", str(rp), "--comms", "record", "--sort", "dso,sym",
                                 "--percent-limit", "1"] + rel,
        }
        for name, args in reports.items():
            rep = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children"] + args,
                                 capture_output=True, text=True)
            with open(os.path.join(pdir, name), "w") as fh:
                fh.write(rep.stdout)
            res[name] = top_lines(rep.stdout, 25)
        if not self.a.keep and os.path.exists(t["parquet"] or ""):
            os.remove(t["parquet"])
        f = self.results.get("analyzer", {}).get("file")
        ana = os.path.join(pbin, "analyze")
        if f:
            for mode, flags in (("conn", ["--conn"]), ("table", [])):
                data = os.path.join(self.work, f"perf-analyze-{mode}.data")
                r = subprocess.run([perf, "record", "-q", "-e", "cpu-clock", "-F", "999", "-o", data,
                                    "--", ana] + flags + [f], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                rep = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children",
                                      "--sort", "dso,sym", "--percent-limit", "0.7"],
                                     capture_output=True, text=True)
                name = f"analyze-{mode}.txt"
                with open(os.path.join(pdir, name), "w") as fh:
                    fh.write(rep.stdout)
                res[name] = top_lines(rep.stdout, 25)


def conn_ratios(res):
    """analyze --conn vs DuckDB's group-by. The repeats are interleaved, so the
    ratio is the median of the per-repeat ratios (like the overhead ratios):
    analyze's wall time over DuckDB's query time, and the same for CPU time
    (user+sys, whole process; DuckDB's includes Python)."""
    c, d = res.get("analyze_conn", {}), res.get("duckdb_conn", {})
    cw, dq = c.get("wall_s_runs") or [], d.get("query_s_runs") or []
    if cw and dq and len(cw) == len(dq):
        res["conn_vs_duckdb_ratio_runs"] = [x / y for x, y in zip(cw, dq)]
        res["conn_vs_duckdb_ratio"] = median(res["conn_vs_duckdb_ratio_runs"])
    elif c.get("secs_median") and d.get("secs_median"):
        res["conn_vs_duckdb_ratio"] = c["secs_median"] / d["secs_median"]
    if c.get("cpu_s_median") and d.get("cpu_s_median"):
        res["conn_vs_duckdb_cpu_ratio"] = c["cpu_s_median"] / d["cpu_s_median"]


def top_lines(report, n):
    lines = [l.rstrip() for l in report.splitlines() if l.strip() and not l.startswith("#")]
    return lines[:n]


# -------------------------------------------------------------------- table

def targets(res):
    out = []
    ov = res.get("overhead", {})
    pc = ov.get("echo", {}).get("per_config", {})
    rec, tcs = pc.get("record", {}), pc.get("tcpstates", {})
    if rec:
        out.append(("churn rate with record >= 0.85 x baseline (echo)", rec.get("ratio_median"),
                    rec.get("ratio_median") is not None and rec["ratio_median"] >= 0.85,
                    f"{fmt(rec.get('ratio_median'))} x"))
    for w, what in (("echo", "at that rate"), ("lean", "in the lean loop (no target, reported)")):
        r = ov.get(w, {}).get("per_config", {}).get("record", {})
        if not r:
            continue
        lost, exact = r.get("lost_runs") or [], r.get("kinds_exact_runs") or []
        out.append((f"zero lost events {what}, every deterministic row present", sum(x or 0 for x in lost),
                    bool(lost) and all(x == 0 for x in lost) and bool(exact) and all(exact),
                    f"lost {lost}, BPF recursion misses {r.get('bpf_misses_runs')}, completeness min "
                    f"{percent(r.get('completeness_min'))}"))
    if rec:
        out.append(("<= 20 bytes/event on disk (recording)", rec.get("bytes_per_event_median"),
                    rec.get("bytes_per_event_median") is not None and rec["bytes_per_event_median"] <= 20,
                    f"{fmt(rec.get('bytes_per_event_median'))} B/event"))
    if tcs:
        out.append(("tcpstates far lower (reference, ~0.25 seen before)", tcs.get("ratio_median"),
                    tcs.get("ratio_median") is not None and rec.get("ratio_median") is not None
                    and tcs["ratio_median"] < rec["ratio_median"],
                    f"{fmt(tcs.get('ratio_median'))} x, while delivering "
                    f"{fmt((tcs.get('completeness_min') or 0) * 100, '.0f')}–100 % of the events "
                    f"(it drops what its perf buffer cannot take)"))
    an = res.get("analyzer", {})
    if an.get("conn_vs_duckdb_ratio") is not None:
        r = an["conn_vs_duckdb_ratio"]
        cr = an.get("conn_vs_duckdb_cpu_ratio")
        out.append(("analyze --conn within 2 x DuckDB group-by", r, r <= 2.0,
                     f"{r:.2f} x DuckDB's time (median of paired repeats "
                     f"{', '.join(f'{x:.2f}' for x in an.get('conn_vs_duckdb_ratio_runs', []))}; "
                     f"CPU time {fmt(cr)} x)"))
    if an.get("analyze_conn", {}).get("maxrss_mb_max") is not None:
        m = an["analyze_conn"]["maxrss_mb_max"]
        out.append(("analyze --conn peak RSS < 500 MB", m, m < 500, f"{m:.0f} MB"))
    if an.get("bytes_per_event") is not None:
        b = an["bytes_per_event"]
        out.append(("<= 20 bytes/event on disk (synthetic file)", b, b <= 20, f"{b:.2f} B/event"))
    return out


def percent(x):
    """A completeness ratio as a percentage; more digits when a shortfall
    would round to 100.00 %."""
    if x is None:
        return "–"
    return f"{x * 100:.4f} %" if x != 1 and f"{x * 100:.2f}" == "100.00" else f"{x * 100:.2f} %"


def config_name(cfg):
    if cfg.startswith("record:"):
        return f"deeptcp record ({cfg.split(':', 1)[1]})"
    return CONFIG_NAMES[cfg]


WORKLOAD_TEXT = {
    "echo": "connect, 1-byte echo, client closes first (FIN), server closes after the client's FIN",
    "lean": "connect, 1 byte to the server, server closes (FIN), client closes with SO_LINGER 0 (RST)",
}


def markdown_overhead(ov, w):
    """One workload's overhead table, A/B ratios, row counts and BPF time per program."""
    L = []
    wo = ov[w]
    L.append(f"Overhead, **{w}** workload ({WORKLOAD_TEXT[w]}; {ov['threads']} client + {ov['threads']} "
             f"acceptor threads, {ov['secs']} s runs, {ov['rounds']} rounds of B T1 B T2 … B, each tracer run "
             "compared with the mean of its two neighbouring baselines; medians over rounds)")
    L.append("")
    L.append("| tracer | conn/s | × baseline (min–max) | events/run | lost | BPF recursion misses "
             "| completeness | tracer CPU µs/event | BPF ns/conn | tracer RSS MB |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cfg, d in wo["per_config"].items():
        rr = d["ratio_runs"]
        comp = d.get("completeness_min")
        L.append("| " + " | ".join([
            config_name(cfg),
            fmt(d["conn_per_sec_median"], ".0f"),
            (f"{fmt(d['ratio_median'])} ({min(rr):.2f}–{max(rr):.2f})" if cfg != "baseline" else
             f"1 (runs {min(d['conn_per_sec_runs']):.0f}–{max(d['conn_per_sec_runs']):.0f} conn/s)"),
            fmt(d.get("events_median"), ".0f"),
            "–" if cfg == "baseline" else str(sum(x or 0 for x in d.get("lost_runs", []))),
            "–" if cfg == "baseline" else str(sum(x or 0 for x in d.get("bpf_misses_runs", []))),
            percent(comp),
            fmt(d.get("cpu_us_per_event_median"), ".2f"),
            fmt((d.get("bpf_cost_run") or {}).get("ns_per_conn"), ".0f"),
            fmt(d["maxrss_kb_median"] / 1024 if d.get("maxrss_kb_median") else None, ".0f"),
        ]) + " |")
    pc = wo["per_config"]
    rec = pc.get("record", {})
    for cfg, ab in wo.get("ab", {}).items():
        L.append("")
        L.append(f"A/B, record against record ({cfg.split(':', 1)[1]}): × baseline {fmt(rec['ratio_median'])} vs "
                 f"{fmt(pc[cfg]['ratio_median'])}, ratio {ab['ratio_of_medians']:.3f}; per round, record's "
                 f"conn/s over the other's: {', '.join(f'{x:.3f}' for x in ab['direct_runs'])} "
                 f"(median {ab['direct_median']:.3f}).")
    if rec.get("kind_rows_per_conn_median"):
        L.append("")
        L.append(f"Recording: {fmt(rec.get('events_per_conn_on_port'), '.2f')} rows per churn connection, "
                 "by kind: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(
                     rec["kind_rows_per_conn_median"].items(), key=lambda x: -x[1]))
                 + "; racy: " + ", ".join(f"{k} {v:.4f}" for k, v in rec["racy_rows_per_conn_median"].items())
                 + ". Deterministic counts exact in "
                 f"{sum(bool(x) for x in rec['kinds_exact_runs'])}/{len(rec['kinds_exact_runs'])} runs"
                 + (f"; {rec['bytes_per_event_median']:.2f} bytes/event on disk (median file "
                    f"{rec['file_bytes_median'] / 2**20:.1f} MiB, {fmt(rec.get('snapshot_rows_median'), '.0f')} "
                    "start-up snapshot rows per file)." if rec.get("bytes_per_event_median") is not None else "."))
        short = [f"{k} {c['rows']}/{c['expected']}" for x in rec["kind_checks_runs"] if x
                 for k, c in x.items() if c["rows"] != c["expected"]]
        if short:
            L.append(f"Counts off (rows/expected, all runs): {'; '.join(short[:12])}.")
    L.append("")
    L.append(f"In-kernel BPF time per {w} connection (one extra run per tracer with "
             "kernel.bpf_stats_enabled=1, not part of the ratios):")
    L.append("")
    L.append("| tracer | program | runs/conn | ns/run | ns/conn | recursion misses |")
    L.append("|---|---|---:|---:|---:|---:|")
    for cfg, d in pc.items():
        bc = d.get("bpf_cost_run") or {}
        for n, v in bc.get("per_prog", {}).items():
            L.append(f"| {cfg} | {n} | {fmt(v['runs_per_conn'])} | {fmt(v['ns_per_run'], '.0f')} "
                     f"| {fmt(v['ns_per_conn'], '.0f')} | {v.get('misses', 0)} |")
        if len(bc.get("per_prog", {})) > 1:
            L.append(f"| {cfg} | **total** | {fmt(bc.get('runs_per_conn'))} | {fmt(bc.get('ns_per_run'), '.0f')} "
                     f"| **{fmt(bc.get('ns_per_conn'), '.0f')}** | {bc.get('misses', 0)} |")
    return L


def markdown(res):
    L = []
    env = res.get("env", {})
    L.append(f"deeptcp benchmarks — {env.get('date')} — {env.get('mode')} — kernel {env.get('kernel')}, "
             f"{env.get('cpus')} CPUs, git {env.get('git')}")
    for label, v in (env.get("compare") or {}).items():
        L.append(f"record ({label}): {v.get('path')}, {v.get('version')}")
    L.append("")
    ov = res.get("overhead")
    for w in (ov or {}).get("workloads", []):
        if w in ov:
            L += markdown_overhead(ov, w)
            L.append("")
    lossy = [r for r in res.get("runs", []) if is_record(r["cfg"]) and r.get("lost")]
    for r in lossy:
        L.append(f"- {r['cfg']} run {r['tag']} lost {r['lost']} events; cumulative lost count in the "
                 f"per-second status lines: {[x['lost_total'] for x in r.get('lost_timeline', [])][:10]}"
                 f" (first at status line {r['lost_timeline'][0]['line'] if r.get('lost_timeline') else '?'})")
    zl = res.get("zero_loss")
    if zl:
        L.append("")
        L.append(f"Highest echo churn rate with zero lost events (ring {zl['ring_size']}): "
                 f"{fmt(zl.get('max_zero_loss_conn_per_sec'), '.0f')} conn/s"
                 + (f" ≈ {zl['max_zero_loss_events_per_sec_approx']:.0f} events/s"
                    if zl.get("max_zero_loss_events_per_sec_approx") else "")
                 + f" — {zl['bound']}.")
        for s in zl["steps"]:
            L.append(f"  - limit {fmt(s.get('rate_limit'), '.0f', 'none')}"
                     + (f", {s['threads']} threads" if s.get("threads") else "")
                     + f": {s['achieved']:.0f} conn/s, lost {s['lost']}, complete {s['complete']}")
    an = res.get("analyzer")
    if an:
        L.append("")
        if an.get("skipped"):
            L.append(f"Analyzer: {an['skipped']}")
        else:
            L.append(f"Analyzer on {an['events']:,} synthetic events "
                     f"({an['file_bytes'] / 2**20:.1f} MiB, {an['bytes_per_event']:.2f} bytes/event), "
                     "medians, output to /dev/null:")
            L.append("")
            L.append("| tool | seconds | events/s | peak RSS MB | CPU s |")
            L.append("|---|---:|---:|---:|---:|")
            for k in ("analyze_table", "duckdb_table", "analyze_conn", "duckdb_conn", "duckdb_conn_1_thread",
                      "analyze_json", "duckdb_json"):
                d = an.get(k)
                if d is None:
                    continue
                name = k.replace("_", " ").replace("conn 1 thread", "conn (1 thread)")
                if "skipped" in d or "error" in d:
                    L.append(f"| {name} | {d.get('skipped') or 'error: ' + str(d.get('error'))[:80]} | | | |")
                    continue
                L.append(f"| {name} | {d['secs_median']:.2f} | {d['events_per_sec'] / 1e6:.2f} M "
                         f"| {d['maxrss_mb_max']:.0f} | {fmt(d.get('cpu_s_median'))} |")
    t = targets(res)
    if t:
        L.append("")
        L.append("| target | result | holds |")
        L.append("|---|---|---|")
        for name, _, ok, txt in t:
            L.append(f"| {name} | {txt} | {'yes' if ok else '**no**'} |")
    return "\n".join(L)


def copy_compare_binaries(ap, specs, bin_dir):
    """--compare LABEL=PATH: each binary is copied to BIN/compare/LABEL/record
    (like scripts/bench's copies: a build must not replace it mid-run).
    Returns {label: copy}, {label: PATH}."""
    out, src = {}, {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.+-]+", label) or label in out:
            ap.error(f"--compare {spec!r}: want LABEL=PATH, LABEL unique, of letters, digits, _ . + -")
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            ap.error(f"--compare {spec!r}: {path} is not an executable file")
        probes = subprocess.run([path, "--list-probes"], capture_output=True, text=True)
        if "built without its eBPF programs" in probes.stdout + probes.stderr:
            ap.error(f"--compare {spec!r}: that record was built without its eBPF programs")
        dst = os.path.join(bin_dir, "compare", label, "record")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(path, dst)
        out[label], src[label] = dst, os.path.abspath(path)
    return out, src


def env_info(a):
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return None
    dirty = sh("git status --porcelain -- record analyze format ebpf | head -1")
    import duckdb
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "quick" if a.quick else "full",
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "git": (sh("git rev-parse --short HEAD") or "?") + ("+dirty" if dirty else ""),
        "bpftrace": sh(f"{a.bpftrace} --version") if a.bpftrace else None,
        "libbpf_tools": sh("dpkg-query -W -f '${Version}' libbpf-tools"),
        "duckdb": duckdb.__version__,
        "rustc": sh("rustc --version"),
        "compare": {label: {"path": a.compare_src[label], "version": sh(f"{path} --version | head -1")}
                    for label, path in a.compare.items()},
        "record_version": sh(f"{os.path.join(a.bin_dir, 'record')} --version | head -1"),
        "binaries_built": {b: datetime.datetime.fromtimestamp(os.path.getmtime(os.path.join(a.bin_dir, b)))
                           .strftime("%Y-%m-%dT%H:%M:%S") for b in ("record", "analyze", "examples/synth")
                           if os.path.exists(os.path.join(a.bin_dir, b))},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs: a smoke test, not numbers to quote")
    ap.add_argument("--profile", action="store_true", help="also perf-profile record and analyze")
    ap.add_argument("--bin-dir", required=True,
                    help="record, analyze, examples/churn, examples/synth (scripts/bench copies them here)")
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--cargo-release-dir", help="cargo's release directory (for a late build of synth)")
    ap.add_argument("--no-build", action="store_true", help="never run cargo")
    ap.add_argument("--out", help="default: bench/results.json (full), bench/results-quick.json (--quick), "
                    "bench/results-compare.json (with --compare); "
                    "an interrupted or failed run writes *.partial.json instead")
    ap.add_argument("--tcpstates")
    ap.add_argument("--bpftrace")
    ap.add_argument("--secs", type=float)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ring-size", default=None, help="record --ring-size (default: record's default)")
    ap.add_argument("--synth-events", type=int)
    ap.add_argument("--analyzer-repeats", type=int)
    ap.add_argument("--bisect-steps", type=int)
    ap.add_argument("--workloads", default="echo,lean",
                    help="churn workloads of the overhead stage, comma-separated (echo, lean; default both)")
    ap.add_argument("--compare", action="append", default=[], metavar="LABEL=PATH",
                    help="another record binary, run as configuration record:LABEL in the same interleaved "
                    "rounds (repeatable): a before/after of a change measured in one run")
    ap.add_argument("--skip", default="",
                    help="comma-separated: record, floor, tcpstates, bpftrace, peers (= floor, tcpstates, "
                    "bpftrace), overhead, zero_loss, analyzer")
    ap.add_argument("--keep", action="store_true", help="keep the recordings and tracer outputs in --work")
    a = ap.parse_args()
    q = a.quick
    # A/B runs (--compare) never replace the results of a full or quick run.
    a.out = a.out or os.path.join(ROOT, "bench", "results-compare.json" if a.compare else
                                  "results-quick.json" if q else "results.json")
    a.secs = a.secs or (2.0 if q else 5.0)
    a.rounds = a.rounds or (1 if q else 5)
    a.synth_events = a.synth_events or (1_000_000 if q else 10_000_000)
    a.analyzer_repeats = a.analyzer_repeats or (1 if q else 3)
    a.bisect_steps = a.bisect_steps if a.bisect_steps is not None else (2 if q else 5)
    a.settle = 0.5
    a.pause = 0.5
    a.skip = set(filter(None, a.skip.split(",")))
    if "peers" in a.skip:
        a.skip |= set(PEERS)
    if not a.tcpstates:
        a.skip.add("tcpstates")
    if not a.bpftrace:
        a.skip |= {"bpftrace", "floor"}
    a.workloads = list(dict.fromkeys(filter(None, a.workloads.split(","))))
    bad = [w for w in a.workloads if w not in WORKLOADS]
    if bad or not a.workloads:
        ap.error(f"--workloads: unknown {bad}; known: {', '.join(WORKLOADS)}")
    os.makedirs(a.work, exist_ok=True)
    a.compare, a.compare_src = copy_compare_binaries(ap, a.compare, a.bin_dir)
    global _pidfile
    _pidfile = os.path.join(a.work, "pids")

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    stats_before = open(STATS).read().strip()
    b = Bench(a)
    b.results["env"] = env_info(a)
    b.results["config"] = {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(a).items()}
    rc = 0
    try:
        set_bpf_stats(False)
        if "overhead" not in a.skip:
            log(f"stage 1-2/4: overhead (interleaved rounds; workloads {', '.join(a.workloads)})")
            b.stage_overhead()
        if "zero_loss" not in a.skip:
            log("stage 3: highest zero-loss rate")
            b.stage_zero_loss()
        if "analyzer" not in a.skip:
            log("stage 5: analyzer")
            b.stage_analyzer()
        if a.profile:
            log("profiling")
            b.stage_profile()
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); cleaning up")
        b.results["interrupted"] = True
        rc = 130
    except Exception as e:  # keep whatever was measured
        log(f"error: {e!r}")
        b.results["error"] = repr(e)
        rc = 1
    finally:
        cleanup()
        with open(STATS, "w") as fh:
            fh.write(stats_before)
    b.results["env"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    b.results["runs"] = b.runs
    b.results["targets"] = [{"target": n, "value": v, "holds": ok, "text": t} for n, v, ok, t in targets(b.results)]
    md = markdown(b.results)
    b.results["table_markdown"] = md
    if rc != 0:
        # Never replace the results of a complete run with a partial one.
        a.out = os.path.splitext(a.out)[0] + ".partial.json"
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as fh:
        json.dump(b.results, fh, indent=1, default=str)
    with open(os.path.splitext(a.out)[0] + ".md", "w") as fh:
        fh.write(md + "\n")
    try:
        print(md, flush=True)
    except (BrokenPipeError, OSError):
        pass
    log(f"wrote {a.out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
