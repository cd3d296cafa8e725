#!/usr/bin/env python3
"""TCP closes and opens that take the transitions `record` infers rows from,
with and without the event, for record/tests/live_inference.rs.

    inference.py            # run inside a private network namespace

Runs every case over 127.0.0.1 and prints one line per case,
"<case> <client port> <server port>", then "done". Cases:

  fin_in_fw2     client shutdown(SHUT_WR), reaches FIN_WAIT2, the server
                 closes: the client receives the FIN in FIN_WAIT2
  orphan_no_fin  client close()s; the server acks the FIN and keeps its end
                 open: the client's FIN_WAIT2 -> CLOSE hands over to a
                 FIN_WAIT2 time-wait socket with no FIN received (if the
                 ACK found the socket locked, the orphan stays in FIN_WAIT2
                 and receives the server's FIN: "orphan_no_fin_held" then)
  close_no_fin   client shutdown(SHUT_WR), FIN_WAIT2, then close(): the same
                 hand-over, in close() (sk_shutdown has RCV_SHUTDOWN)
  linger2_no_fin as close_no_fin with TCP_LINGER2 -1: CLOSE and a reset
  reset_in_fw2   client in FIN_WAIT2, the server aborts (SO_LINGER 0): the
                 client's FIN_WAIT2 -> CLOSE is the RST (sk_err ECONNRESET)
  simopen        two sockets connect() to each other while nftables drops
                 SYNs, then the drop is lifted: a simultaneous open, in
                 which a connecting socket goes SYN_RECV -> ESTABLISHED
                 (prints "simopen <port> <port>")
"""
import select
import socket
import struct
import subprocess
import sys
import time

LINGER0 = struct.pack("ii", 1, 0)
TCP_FIN_WAIT2 = 5
TCP_ESTABLISHED = 1
TABLE = "deeptcp_simopen"


def state(s):
    # struct tcp_info starts with u8 tcpi_state.
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def wait_state(s, want, what):
    end = time.monotonic() + 30
    while state(s) != want:
        if time.monotonic() > end:
            sys.exit(f"{what}: state {state(s)}, wanted {want}")
        time.sleep(0.01)


def pair(listener):
    c = socket.create_connection(listener.getsockname(), timeout=30)
    a, _ = listener.accept()
    a.settimeout(30)
    return c, a


def ports(c):
    return c.getsockname()[1], c.getpeername()[1]


def ack_now(a):
    """Reads the peer's FIN on `a` and acks it at once (not delayed)."""
    if a.recv(1) != b"":
        sys.exit("expected EOF")
    a.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def half_close(c, a, what):
    """Client sends its FIN and waits in FIN_WAIT2 (its FIN acked)."""
    c.shutdown(socket.SHUT_WR)
    ack_now(a)
    wait_state(c, TCP_FIN_WAIT2, what)


def fin_in_fw2(listener):
    c, a = pair(listener)
    print("fin_in_fw2", *ports(c), flush=True)
    half_close(c, a, "fin_in_fw2")
    a.close()
    if c.recv(1) != b"":
        sys.exit("fin_in_fw2: expected EOF")
    c.close()


def in_fin_wait2(port):
    """Whether a socket with local port `port` is in FIN_WAIT2 (/proc/net/tcp
    of this network namespace)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and int(fields[3], 16) == TCP_FIN_WAIT2:
                return True
    return False


def orphan_no_fin(listener):
    c, a = pair(listener)
    cp, sp = ports(c)
    print("orphan_no_fin", cp, sp, flush=True)
    c.close()
    ack_now(a)
    # The ack reaches the orphan at once over loopback (the delayed-ack timer
    # would send it within 200 ms anyway) and hands it over to a FIN_WAIT2
    # time-wait socket. Unless close() still held the socket's lock then: the
    # orphan then waits in FIN_WAIT2 for its timer (60 s), and the FIN sent
    # below reaches it, a real FIN received. Said, so the test knows.
    deadline = time.monotonic() + 2
    while in_fin_wait2(cp) and time.monotonic() < deadline:
        time.sleep(0.05)
    if in_fin_wait2(cp):
        print("orphan_no_fin_held", cp, sp, flush=True)
    a.close()


def close_no_fin(listener, linger2):
    c, a = pair(listener)
    name = "linger2_no_fin" if linger2 else "close_no_fin"
    print(name, *ports(c), flush=True)
    if linger2:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, -1)
    half_close(c, a, name)
    c.close()
    time.sleep(0.3)
    a.close()


def reset_in_fw2(listener):
    c, a = pair(listener)
    print("reset_in_fw2", *ports(c), flush=True)
    half_close(c, a, "reset_in_fw2")
    a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    a.close()
    c.settimeout(30)
    try:
        c.recv(1)
        sys.exit("reset_in_fw2: expected ECONNRESET")
    except ConnectionResetError:
        pass
    c.close()


def nft(script):
    subprocess.run(["nft", "-f", "-"], input=script.encode(), check=True)


def simopen():
    p = socket.socket()
    q = socket.socket()
    p.bind(("127.0.0.1", 0))
    q.bind(("127.0.0.1", 0))
    pp, qp = p.getsockname()[1], q.getsockname()[1]
    print("simopen", pp, qp, flush=True)
    nft(
        f"add table inet {TABLE}\n"
        f"add chain inet {TABLE} in {{ type filter hook input priority 0 ; }}\n"
        f"add rule inet {TABLE} in tcp flags syn drop\n"
    )
    p.setblocking(False)
    q.setblocking(False)
    p.connect_ex(("127.0.0.1", qp))
    q.connect_ex(("127.0.0.1", pp))
    nft(f"delete table inet {TABLE}\n")
    # The retransmitted SYNs (1 s, 3 s, ...) now cross.
    end = time.monotonic() + 60
    for s in (p, q):
        while state(s) != TCP_ESTABLISHED:
            if time.monotonic() > end:
                sys.exit(f"simopen: states {state(p)} {state(q)}")
            select.select([], [s], [], 0.5)
    p.close()
    q.close()


def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    fin_in_fw2(listener)
    orphan_no_fin(listener)
    close_no_fin(listener, False)
    close_no_fin(listener, True)
    reset_in_fw2(listener)
    listener.close()
    simopen()
    print("done", flush=True)


if __name__ == "__main__":
    main()
