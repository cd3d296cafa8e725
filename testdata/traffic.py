#!/usr/bin/env python3
"""Loopback TCP traffic for deeptcp's fixtures and live tests.

Run as two separate processes so that events can be told apart by pid:

    traffic.py server            # prints "READY <port4> <port6>", serves, exits
    traffic.py client PORT4 PORT6 [--refused-port N]

The client runs a fixed script; each step is one connection:
  1. IPv4 connect, send b"c", close              -> normal close, client first
  2. IPv4 connect to a closed port               -> RST sent, ECONNREFUSED
  3. IPv4 connect, send b"r"                     -> server aborts (SO_LINGER 0): RST
  4. IPv6 connect to ::1, send b"c", close       -> normal close over IPv6
  5. IPv6 connect, client aborts (SO_LINGER 0)   -> RST sent by the client
The server handles exactly the four connections that reach it, then exits.
The client prints one line per step: "<step> <local port>" so tests can match
the recorded events against the real ports.

Further scenarios for the live tests (each prints "READY <port>" or
"<step> <local port>" lines the same way):

    traffic.py zw-server [ADDR]     small receive buffer, stops reading for 2 s: zero windows
    traffic.py zw-client ADDR PORT  writes 4 MiB as fast as it can
    traffic.py churn N              N connect/accept/close pairs as fast as possible
    traffic.py hold-server [ADDR]   accepts one connection, echoes until EOF
    traffic.py hold-client ADDR PORT SECONDS|-
                                    connects, prints "connected <port>", waits SECONDS
                                    or, with "-", until a line arrives on stdin (tests
                                    drop its packets meanwhile), sends 100 bytes,
                                    waits for the echo, closes

churn prints "churning <port>" once its listener is up, before the first
connection, so that a test can start counting its load from then.
"""
import socket
import struct
import sys
import time

LINGER0 = struct.pack("ii", 1, 0)


def server():
    s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s4.bind(("127.0.0.1", 0))
    s4.listen(16)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s6.bind(("::1", 0))
    s6.listen(16)
    print("READY", s4.getsockname()[1], s6.getsockname()[1], flush=True)
    for listener in (s4, s4, s6, s6):
        conn, _ = listener.accept()
        conn.settimeout(5)
        try:
            cmd = conn.recv(1)
        except OSError:
            cmd = b""
        if cmd == b"r":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
            conn.close()
            continue
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
        conn.close()
    s4.close()
    s6.close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def client(port4, port6, refused):
    # 1. normal IPv4 close
    c = socket.create_connection(("127.0.0.1", port4))
    print("normal4", c.getsockname()[1], flush=True)
    c.sendall(b"c")
    c.close()
    time.sleep(0.05)
    # 2. refused
    try:
        socket.create_connection(("127.0.0.1", refused), timeout=5)
        print("refused none", flush=True)
    except ConnectionRefusedError:
        print("refused", refused, flush=True)
    time.sleep(0.05)
    # 3. server resets
    c = socket.create_connection(("127.0.0.1", port4))
    print("reset_by_server", c.getsockname()[1], flush=True)
    c.sendall(b"r")
    c.settimeout(5)
    try:
        c.recv(1)
    except OSError:
        pass
    c.close()
    time.sleep(0.05)
    # 4. normal IPv6 close
    c = socket.create_connection(("::1", port6))
    print("normal6", c.getsockname()[1], flush=True)
    c.sendall(b"c")
    c.close()
    time.sleep(0.05)
    # 5. client resets over IPv6
    c = socket.create_connection(("::1", port6))
    print("reset_by_client6", c.getsockname()[1], flush=True)
    c.sendall(b"x")
    time.sleep(0.05)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    c.close()


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def zw_server(addr):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((addr, 0))
    s.listen(1)
    print("READY", s.getsockname()[1], flush=True)
    conn, _ = s.accept()
    time.sleep(2.0)
    while conn.recv(65536):
        pass
    conn.close()
    s.close()


def zw_client(addr, port):
    c = socket.create_connection((addr, port))
    print("zw_client", c.getsockname()[1], flush=True)
    c.sendall(b"z" * (4 << 20))
    c.close()


def hold_server(addr):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.bind((addr, 0))
    s.listen(1)
    print("READY", s.getsockname()[1], flush=True)
    conn, _ = s.accept()
    conn.settimeout(30)
    while True:
        data = conn.recv(4096)
        if not data:
            break
        conn.sendall(data)
    conn.close()
    s.close()


def hold_client(addr, port, seconds):
    c = socket.create_connection((addr, port), timeout=30)
    print("connected", c.getsockname()[1], flush=True)
    if seconds is None:
        # Held until the test says so: emulated kernels run at a fraction of
        # native speed, so no fixed wait fits both.
        sys.stdin.readline()
    else:
        time.sleep(seconds)
    c.sendall(b"h" * 100)
    got = 0
    while got < 100:
        data = c.recv(4096)
        if not data:
            break
        got += len(data)
    c.close()


def churn(n):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    addr = s.getsockname()
    print("churning", addr[1], flush=True)
    for _ in range(n):
        c = socket.create_connection(addr)
        a, _ = s.accept()
        c.close()
        a.close()
    s.close()
    print("churned", n, flush=True)


def main(argv):
    if len(argv) >= 3 and argv[1] == "churn":
        churn(int(argv[2]))
    elif len(argv) >= 2 and argv[1] == "zw-server":
        zw_server(argv[2] if len(argv) >= 3 else "127.0.0.1")
    elif len(argv) >= 4 and argv[1] == "zw-client":
        zw_client(argv[2], int(argv[3]))
    elif len(argv) >= 2 and argv[1] == "hold-server":
        hold_server(argv[2] if len(argv) >= 3 else "127.0.0.1")
    elif len(argv) >= 5 and argv[1] == "hold-client":
        hold_client(argv[2], int(argv[3]), None if argv[4] == "-" else float(argv[4]))
    elif len(argv) >= 2 and argv[1] == "server":
        server()
    elif len(argv) >= 4 and argv[1] == "client":
        refused = int(argv[5]) if len(argv) >= 6 and argv[4] == "--refused-port" else closed_port()
        client(int(argv[2]), int(argv[3]), refused)
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
