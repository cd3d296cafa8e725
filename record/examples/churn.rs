//! Loopback connection-churn generator for benchmarks (`scripts/bench`).
//!
//! N client threads each loop: connect to a listener on 127.0.0.1, send one
//! byte, read one byte back, close. A acceptor threads each loop: accept,
//! read one byte, write one byte, wait for the client's FIN (read returns 0),
//! close. Because the server always closes after the client, every
//! connection goes through exactly the same ten TCP state transitions:
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
//! When it returns, every connection it counted is fully closed on both
//! sides, and the listener is closed.
//!
//! ```text
//! cargo run --release -p deeptcp-record --example churn -- --secs 5 --threads 2
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
use clap::Parser;

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
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    errors: AtomicU64,
    served: AtomicU64,
    server_errors: AtomicU64,
}

fn set_accept_timeout(listener: &TcpListener, timeout: Duration) -> Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: valid socket fd, a properly sized timeval for SO_RCVTIMEO
    // (which accept(2) honours on Linux).
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("setsockopt SO_RCVTIMEO");
    }
    Ok(())
}

/// One server-side exchange: read 1, write 1, wait for EOF, close.
fn serve(mut s: TcpStream) -> std::io::Result<()> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    s.write_all(&b)?;
    // Wait for the client's FIN so that the client always closes first.
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

fn acceptor(listener: Arc<TcpListener>, stop: Arc<AtomicBool>, c: Arc<Counters>) {
    loop {
        match listener.accept() {
            Ok((s, _)) => match serve(s) {
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

/// One client-side exchange: connect, write 1, read 1, close.
fn exchange(addr: SocketAddr) -> std::io::Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.write_all(b"x")?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    drop(s);
    Ok(())
}

fn client(addr: SocketAddr, start: Instant, end: Instant, interval: Option<Duration>, c: Arc<Counters>) {
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
        match exchange(addr) {
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
                .spawn(move || acceptor(l, s, c))
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
                .spawn(move || client(addr, t0, end, interval, c))
                .expect("spawning a client thread")
        })
        .collect();
    for t in clients {
        let _ = t.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Every client has closed; the acceptors finish their last exchange
    // (they wait for the client's FIN), then see `stop` at the next accept timeout.
    stop.store(true, Ordering::Relaxed);
    for t in servers {
        let _ = t.join();
    }
    drop(listener);
    let c = &counters;
    let done = c.done.load(Ordering::Relaxed);
    println!(
        "{{\"connections\":{done},\"secs\":{elapsed:.3},\"conn_per_sec\":{:.1},\"errors\":{},\"served\":{},\"server_errors\":{},\"port\":{},\"threads\":{},\"acceptors\":{acceptors},\"rate\":{}}}",
        done as f64 / elapsed,
        c.errors.load(Ordering::Relaxed),
        c.served.load(Ordering::Relaxed),
        c.server_errors.load(Ordering::Relaxed),
        addr.port(),
        args.threads,
        args.rate.map_or("null".to_string(), |r| format!("{r}")),
    );
    Ok(())
}
