//! Seeds for the reader fuzz target (`format/fuzz`, run by `scripts/fuzz`):
//! small files as this build writes them (page checksums, several row
//! groups, a stacks sidecar) and recordings "killed" mid-way with their
//! checkpoint sidecar, in the fuzz target's checkpoint framing, so that the
//! fuzzer starts from inputs that reach the checksum and checkpoint checks
//! rather than having to find them. Not a test.
//!
//! ```text
//! cargo run -p deeptcp-format --example fuzz_seeds -- DIR
//! ```

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use deeptcp_format::testing;
use deeptcp_format::{
    checkpoint_path, Attribution, ClockAnchor, Event, EventKind, EventWriter, Family, RecordingMeta, StackWriter,
    TcpInfo, TcpState, WriterOptions,
};

/// Must match `CHECKPOINT_TAG` in `format/fuzz/fuzz_targets/reader.rs`.
const CHECKPOINT_TAG: &[u8; 4] = b"DTCK";

fn meta() -> RecordingMeta {
    RecordingMeta {
        host: "fuzz".into(),
        kernel_release: "6.8.0".into(),
        boot_id: "00000000-0000-0000-0000-000000000001".into(),
        clock: ClockAnchor {
            realtime_ns: 1_700_000_000_000_000_000,
            monotonic_ns: 1_000_000_000,
        },
        recorder_version: "fuzz-seed".into(),
        kstack: true,
        ..Default::default()
    }
}

fn event(i: u64, probes: &[Arc<str>]) -> Event {
    let v6 = i.is_multiple_of(5);
    Event {
        mono_ns: 1_000_000_000 + i as i64 * 977,
        pid: 100 + (i % 7) as u32,
        tid: 100 + (i % 11) as u32,
        comm: ["curl", "nginx", ""][i as usize % 3].into(),
        family: if v6 { Family::Inet6 } else { Family::Inet },
        saddr: if v6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 0, (i % 3) as u8, (i % 200) as u8))
        },
        daddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        sport: 40_000 + i as u16,
        dport: 443,
        oldstate: i.is_multiple_of(2).then_some(TcpState::SynSent),
        newstate: Some(TcpState::Established),
        sk_err: if i.is_multiple_of(9) { 104 } else { 0 },
        netns: 4026531840,
        stack_id: i.is_multiple_of(4).then_some(i as i64 % 5),
        probe: Arc::clone(&probes[i as usize % probes.len()]),
        cookie: (1 << 20) | (i / 3),
        cgroup_id: 7,
        attribution: Attribution::ALL[i as usize % Attribution::ALL.len()],
        tcp: if i.is_multiple_of(3) {
            TcpInfo::default()
        } else {
            TcpInfo {
                srtt_us: Some(100 + i as u32),
                bytes_acked: Some(i * 10),
                ..TcpInfo::default()
            }
        },
        ..testing::event(EventKind::ALL[i as usize % EventKind::ALL.len()])
    }
}

fn opts() -> WriterOptions {
    WriterOptions {
        row_group_rows: 64,
        batch_rows: 32,
        ..WriterOptions::default()
    }
}

fn run(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let probes: Vec<Arc<str>> = ["tp_btf:inet_sock_set_state", "fentry:tcp_fin"]
        .into_iter()
        .map(Arc::from)
        .collect();

    // A finished recording and a stacks sidecar.
    let path = dir.join("seed-crc.parquet");
    let mut w = EventWriter::new(File::create(&path)?, &meta(), opts())?;
    for i in 0..200 {
        w.push(&event(i, &probes))?;
    }
    w.finish(3)?;
    let mut s = StackWriter::new(File::create(dir.join("seed-crc.stacks.parquet"))?)?;
    for id in 0..5 {
        s.push(id, &[format!("tcp_v4_connect+0x{id:x}"), "__sys_connect+0x9e".into()])?;
    }
    s.finish()?;

    // Recordings killed after some flushes: file and sidecar, framed.
    let scratch = dir.join("seed-scratch");
    std::fs::create_dir_all(&scratch)?;
    for (name, flushes) in [("seed-checkpoint-1.bin", 1u64), ("seed-checkpoint-3.bin", 3)] {
        let live = scratch.join(name.replace(".bin", ".parquet"));
        let _ = std::fs::remove_file(&live);
        let _ = std::fs::remove_file(checkpoint_path(&live));
        let mut w = EventWriter::with_checkpoints(File::create_new(&live)?, &live, &meta(), opts())?;
        for i in 0..flushes * 40 + 17 {
            w.push(&event(i, &probes))?;
            if (i + 1) % 40 == 0 {
                w.flush()?;
            }
        }
        let file = std::fs::read(&live)?;
        let sidecar = std::fs::read(checkpoint_path(&live))?;
        drop(w);
        let mut seed = CHECKPOINT_TAG.to_vec();
        seed.extend_from_slice(&u32::try_from(file.len())?.to_le_bytes());
        seed.extend_from_slice(&file);
        seed.extend_from_slice(&sidecar);
        std::fs::write(dir.join(name), seed)?;
    }
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: fuzz_seeds DIR");
        return ExitCode::from(2);
    };
    match run(Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fuzz_seeds: {e}");
            ExitCode::FAILURE
        }
    }
}
