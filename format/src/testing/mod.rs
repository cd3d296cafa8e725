//! Test support shared by every crate's tests: rows built from one base
//! instead of twenty-field [`Event`] literals, and the Python interop
//! checkers' runner ([`python`]).
//!
//! Compiled for this crate's own unit tests and, through the `testing`
//! feature, for the tests and examples of crates that enable it in their
//! `[dev-dependencies]`; never part of a release build.

pub mod python;

use std::net::{IpAddr, Ipv4Addr};

use crate::event::{Attribution, Event, EventKind, Family, TcpInfo};

/// A `kind` row with nothing else known: every number 0, every optional
/// column null, empty comm and probe, attribution unknown, IPv4 loopback at
/// both ends. Tests name only the fields they care about:
/// `Event { pid: 7, cookie: 9, ..event(EventKind::Retransmit) }`.
pub fn event(kind: EventKind) -> Event {
    Event {
        mono_ns: 0,
        kind,
        pid: 0,
        tid: 0,
        comm: "".into(),
        family: Family::Inet,
        saddr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        daddr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        sport: 0,
        dport: 0,
        oldstate: None,
        newstate: None,
        sk_err: 0,
        netns: 0,
        stack_id: None,
        probe: "".into(),
        cookie: 0,
        cgroup_id: 0,
        attribution: Attribution::Unknown,
        tcp: TcpInfo::default(),
    }
}
