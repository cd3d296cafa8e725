//! Loopback connection-churn generator for benchmarks (`scripts/bench`).
//!
//! Two workloads (`--workload`), both with N client threads against a
//! listener on 127.0.0.1 served by A acceptor threads.
//!
//! **`echo`** (the default). Each client loops: connect, send one byte,
//! read one byte back, close. Each acceptor loops: accept, read one byte,
//! write one byte, wait for the client's FIN (read returns 0), close.
//! Because the server always closes after the client, every connection goes
//! through exactly the same ten TCP state transitions:
//!
//! ```text
//! client: CLOSE→SYN_SENT→ESTABLISHED→FIN_WAIT1→FIN_WAIT2→CLOSE     (5)
//! server: LISTEN→SYN_RECV→ESTABLISHED→CLOSE_WAIT→LAST_ACK→CLOSE    (5)
//! ```
//!
//! plus two for the listener itself (CLOSE→LISTEN, LISTEN→CLOSE), so a
//! recorder's completeness can be checked exactly: `10 × connections + 2`
//! `state_change` rows with the listener's port on either side.
//!
//! **`lean`** (what a busy proxy or load balancer sees: no TIME_WAIT, an
//! abortive close). Each client loops: connect, send one byte, read until
//! the server closes (read returns 0), set `SO_LINGER` {on, 0}, close, which
//! sends a RST instead of a FIN. Each acceptor loops: accept, read one byte,
//! close (a FIN). What a connection does, as recorded by `record` on Linux
//! 6.18 (full speed and paced, 2 and 4 threads; rows in brackets):
//!
//! ```text
//! client: CLOSE→SYN_SENT [connect] →ESTABLISHED →CLOSE_WAIT [fin_recv: the
//!         server's FIN] →CLOSE (close() with linger 0: tcp_disconnect)
//!         [reset_sent, sock_error ECONNRESET, destroy_sock]               (4)
//! server: LISTEN→SYN_RECV →ESTABLISHED [accept] →FIN_WAIT1 [fin_sent], then
//!         [reset_recv] →CLOSE [destroy_sock]        client's RST first    (4)
//!      or →FIN_WAIT2 →CLOSE [destroy_sock]          its ACK of the FIN first
//!      or →FIN_WAIT2 [reset_recv] →CLOSE [destroy_sock]   (ACK first, rare)
//! ```
//!
//! The server's end is a race between the client's (delayed) ACK of the FIN
//! and its RST. Usually (98–99.6 % here) the RST comes first. When the ACK
//! does, the orphaned socket goes FIN_WAIT1→FIN_WAIT2 and, at once, to a
//! FIN_WAIT2 time-wait socket (→CLOSE, destroyed), which the RST then kills
//! without a row; if the socket was locked at that moment, it waits in
//! FIN_WAIT2 for the RST instead. So per connection: 8 state changes not
//! counting FIN_WAIT1→FIN_WAIT2, `connect`, `accept`, `fin_sent`,
//! `fin_recv`, `sock_error` 1 each, `destroy_sock` 2: 15 exact rows, plus
//! `reset_sent` (1) and `reset_recv` or FIN_WAIT1→FIN_WAIT2 (1, rarely 2):
//! 17. The client's `sock_error` and `destroy_sock` rows have dport 0
//! (tcp_disconnect cleared it). The listener adds CLOSE→LISTEN, LISTEN→CLOSE
//! and its `destroy_sock`. `bench/bench.py` (`WORKLOADS`) checks the exact
//! counts; the output line says `"workload":"lean"`.
//!
//! When it returns, every connection it counted is closed on both sides
//! (echo: fully, both FINs exchanged; lean: the client's RST sent), and the
//! listener is closed.
//!
//! ```text
//! cargo run --release -p deeptcp-record --example churn -- --secs 5 --threads 2 [--workload lean]
//! {"connections":151234,"secs":5.001,"conn_per_sec":30240.1,"errors":0,"port":41235,...}
//! ```
//!
//! `--rate R` caps the total rate at R connections/s (spread over the client
//! threads, each paced on an absolute schedule so short stalls are caught up
//! without bursts above a few ms' worth).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

/// What one connection does (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Client: connect, write 1, read 1, close (FIN); server: accept, read 1,
    /// write 1, wait for the client's FIN, close. Ten state changes.
    Echo,
    /// Client: connect, write 1, read until the server closes, close with
    /// SO_LINGER 0 (RST); server: accept, read 1, close.
    Lean,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Echo => "echo",
            Workload::Lean => "lean",
        }
    }
}

/// Loopback TCP connection churn: connect, 1-byte exchange, close.
#[derive(Debug, Parser)]
#[command(name = "churn")]
struct Args {
    /// How long to generate connections, in seconds (fractions allowed).
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Client threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Acceptor (server) threads; default: as many as client threads.
    #[arg(long)]
    acceptors: Option<usize>,
    /// Cap on the total rate, connections per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Listen on this port (default: an ephemeral port chosen by the kernel).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seconds to wait before starting (e.g. to let a tracer settle); the
    /// listener is already open while waiting, and its port is printed on
    /// stderr as `churn: listening on PORT`.
    #[arg(long, default_value_t = 0.0)]
    delay: f64,
    /// What each connection does: `echo` (1-byte echo, client closes first,
    /// FINs both ways) or `lean` (1 byte to the server, server closes, client
    /// closes with SO_LINGER 0: a RST).
    #[arg(long, value_enum, default_value_t = Workload::Echo)]
    workload: Workload,
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    errors: AtomicU64,
    served: AtomicU64,
    server_errors: AtomicU64,
}

/// `setsockopt(fd, SOL_SOCKET, name, value)`; `T` is the option's C type.
fn set_socket_option<T>(fd: &impl AsRawFd, name: libc::c_int, value: &T) -> std::io::Result<()> {
    // SAFETY: valid socket fd, a pointer to a live `T` and its exact size; the
    // callers pass the C type the option expects.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn set_accept_timeout(listener: &TcpListener, timeout: Duration) -> Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // accept(2) honours SO_RCVTIMEO on Linux.
    set_socket_option(listener, libc::SO_RCVTIMEO, &tv).context("setsockopt SO_RCVTIMEO")
}

/// Reads until EOF (the peer's FIN), discarding what arrives.
fn read_to_eof(s: &mut TcpStream) -> std::io::Result<()> {
    let mut rest = [0u8; 16];
    loop {
        match s.read(&mut rest) {
            Ok(0) => return Ok(()),
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One server-side exchange.
fn serve(workload: Workload, s: TcpStream) -> std::io::Result<()> {
    match workload {
        Workload::Echo => serve_echo(s),
        Workload::Lean => serve_lean(s),
    }
}

/// Lean server: read 1, close (FIN; the client resets afterwards).
fn serve_lean(mut s: TcpStream) -> std::io::Result<()> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    drop(s);
    Ok(())
}

/// Echo server: read 1, write 1, wait for EOF, close.
fn serve_echo(mut s: TcpStream) -> std::io::Result<()> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    s.write_all(&b)?;
    // Wait for the client's FIN so that the client always closes first.
    read_to_eof(&mut s)
}

fn acceptor(workload: Workload, listener: Arc<TcpListener>, stop: Arc<AtomicBool>, c: Arc<Counters>) {
    loop {
        match listener.accept() {
            Ok((s, _)) => match serve(workload, s) {
                Ok(()) => {
                    c.served.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    c.server_errors.fetch_add(1, Ordering::Relaxed);
                }
            },
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            Err(_) => {
                c.server_errors.fetch_add(1, Ordering::Relaxed);
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// One client-side exchange.
fn exchange(workload: Workload, addr: SocketAddr) -> std::io::Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.write_all(b"x")?;
    match workload {
        Workload::Echo => {
            // Read the echo, close (FIN).
            let mut b = [0u8; 1];
            s.read_exact(&mut b)?;
        }
        Workload::Lean => {
            // Wait for the server's FIN, then close with linger 0: a RST.
            read_to_eof(&mut s)?;
            let abort = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            set_socket_option(&s, libc::SO_LINGER, &abort)?;
        }
    }
    drop(s);
    Ok(())
}

fn client(
    workload: Workload,
    addr: SocketAddr,
    start: Instant,
    end: Instant,
    interval: Option<Duration>,
    c: Arc<Counters>,
) {
    let mut n: u32 = 0;
    loop {
        let now = Instant::now();
        if now >= end {
            return;
        }
        if let Some(iv) = interval {
            let due = start + iv * n;
            if due > now {
                if due >= end {
                    return;
                }
                thread::sleep(due - now);
            } else if now - due > Duration::from_millis(50) {
                // Far behind (stall): do not burst to catch up more than 50 ms.
                n = ((now - start).as_nanos() / iv.as_nanos().max(1)) as u32;
            }
            n = n.saturating_add(1);
        }
        match exchange(workload, addr) {
            Ok(()) => {
                c.done.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !(args.secs > 0.0 && args.secs.is_finite()) {
        bail!("--secs must be a positive number");
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    if let Some(r) = args.rate {
        if !(r > 0.0 && r.is_finite()) {
            bail!("--rate must be a positive number");
        }
    }
    let acceptors = args.acceptors.unwrap_or(args.threads).max(1);
    let workload = args.workload;
    let listener = TcpListener::bind(("127.0.0.1", args.port)).context("binding the listener")?;
    set_accept_timeout(&listener, Duration::from_millis(100))?;
    let addr = listener.local_addr()?;
    eprintln!("churn: listening on {}", addr.port());
    if args.delay > 0.0 {
        thread::sleep(Duration::from_secs_f64(args.delay));
    }
    let listener = Arc::new(listener);
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());

    let servers: Vec<_> = (0..acceptors)
        .map(|i| {
            let (l, s, c) = (listener.clone(), stop.clone(), counters.clone());
            thread::Builder::new()
                .name(format!("acceptor{i}"))
                .spawn(move || acceptor(workload, l, s, c))
                .expect("spawning an acceptor thread")
        })
        .collect();

    let interval = args.rate.map(|r| Duration::from_secs_f64(args.threads as f64 / r));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.secs);
    let clients: Vec<_> = (0..args.threads)
        .map(|i| {
            let c = counters.clone();
            // Stagger paced threads so they do not all fire together.
            let t0 = start + interval.map_or(Duration::ZERO, |iv| iv * i as u32 / args.threads as u32);
            thread::Builder::new()
                .name(format!("client{i}"))
                .spawn(move || client(workload, addr, t0, end, interval, c))
                .expect("spawning a client thread")
        })
        .collect();
    for t in clients {
        let _ = t.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Every client has closed; the acceptors finish their last exchange
    // (echo: they wait for the client's FIN; lean: the client read their FIN
    // before closing), then see `stop` at the next accept timeout.
    stop.store(true, Ordering::Relaxed);
    for t in servers {
        let _ = t.join();
    }
    drop(listener);
    let c = &counters;
    let done = c.done.load(Ordering::Relaxed);
    println!(
        "{{\"connections\":{done},\"secs\":{elapsed:.3},\"conn_per_sec\":{:.1},\"errors\":{},\"served\":{},\"server_errors\":{},\"port\":{},\"threads\":{},\"acceptors\":{acceptors},\"rate\":{},\"workload\":\"{}\"}}",
        done as f64 / elapsed,
        c.errors.load(Ordering::Relaxed),
        c.served.load(Ordering::Relaxed),
        c.server_errors.load(Ordering::Relaxed),
        addr.port(),
        args.threads,
        args.rate.map_or("null".to_string(), |r| format!("{r}")),
        workload.name(),
    );
    Ok(())
}
