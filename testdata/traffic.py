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


def main(argv):
    if len(argv) >= 2 and argv[1] == "server":
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
