//! Wire record → file rows: the one place that turns what the kernel sent
//! (`deeptcp_common::WireEvent`) into rows, written straight into the
//! writer's column buffers ([`deeptcp_format::RowBatch`]): no per-row
//! `Event`, shared string or address text on the way (the live view builds
//! events from the batch, and only when it prints).
//!
//! A `state_change` record may also yield a second row: the `inferred`
//! rungs of the probe ladders (FIN sent/received, connect, accept read off
//! the transition) are made here rather than in the kernel, so each
//! transition costs the programs one ring-buffer record, not two.
//!
//! An inferred row stands only for what the transition proves (see
//! [`Inference`]); where a transition also happens without the event, the
//! programs send a flag that tells the cases apart, or there is no row.

use deeptcp_common::{flags, probe, WireEvent, AF_INET, AF_INET6, NO_STACK};
use deeptcp_format::filter::kind_bit;
use deeptcp_format::{
    Addr, Attribution, Comm, Event, EventKind, Family, ProbeId, ProbeStatus, Row, RowBatch, TcpInfo, TcpState,
};

/// Why a wire record could not become a row (counted and reported).
#[derive(Debug, PartialEq, Eq)]
pub enum Reject {
    UnknownKind(u8),
    UnknownFamily(u16),
}

/// The event kind of a wire kind id (`None` for ids the programs do not
/// send: snapshot rows are made by `record` itself).
pub fn event_kind(k: u8) -> Option<EventKind> {
    EventKind::from_u8(k).filter(|k| k.on_wire())
}

/// The attribution of a wire attribution id (`backfill` is `analyze`'s,
/// never sent).
fn attribution_of(a: u8) -> Attribution {
    match Attribution::from_u8(a) {
        Some(Attribution::Backfill) | None => Attribution::Unknown,
        Some(a) => a,
    }
}

/// Which kinds `record` infers from `state_change` records: those whose
/// ladder settled on the `inferred:inet_sock_set_state` rung.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inference {
    pub connect: bool,
    pub accept: bool,
    pub fin_sent: bool,
    pub fin_recv: bool,
}

impl Inference {
    /// The kinds that can be inferred from a `state_change` record.
    pub const KINDS: [EventKind; 4] = [
        EventKind::Connect,
        EventKind::Accept,
        EventKind::FinSent,
        EventKind::FinRecv,
    ];

    /// From the probe report of `record`'s `probes::attach_all`;
    /// `inferred` is the name of the inference rung
    /// ([`probe::INFERRED_SET_STATE`]).
    pub fn from_statuses(statuses: &[ProbeStatus], inferred: &str) -> Self {
        let on = |k: EventKind| {
            statuses
                .iter()
                .any(|s| s.used && s.kind == k.as_str() && s.probe == inferred)
        };
        Inference {
            connect: on(EventKind::Connect),
            accept: on(EventKind::Accept),
            fin_sent: on(EventKind::FinSent),
            fin_recv: on(EventKind::FinRecv),
        }
    }

    /// The kind a `state_change` record also stands for, if inferred.
    ///
    /// From the kernel's source (net/ipv4/tcp*.c, as of 6.1 to 6.18):
    /// - connect: CLOSE -> SYN_SENT is set only by `tcp_v4_connect` /
    ///   `tcp_v6_connect`, i.e. in `connect()` (or a Fast Open `sendmsg`).
    /// - fin_sent: ESTABLISHED/SYN_RECV -> FIN_WAIT1 and CLOSE_WAIT ->
    ///   LAST_ACK are set only by `tcp_close_state()`, which `tcp_close()` and
    ///   `tcp_shutdown()` follow with `tcp_send_fin()` for exactly these.
    /// - fin_recv: `tcp_fin()` sets `SOCK_DONE`, then ESTABLISHED/SYN_RECV ->
    ///   CLOSE_WAIT, FIN_WAIT1 -> CLOSING, or FIN_WAIT2 -> CLOSE (time-wait
    ///   takes over). FIN_WAIT2 -> CLOSE also happens with no FIN: a
    ///   close()d socket whose FIN is acked is handed to a FIN_WAIT2
    ///   time-wait socket (`tcp_fin_timeout`), `TCP_LINGER2` < 0, the
    ///   FIN_WAIT2 timer, a reset. Only transitions with
    ///   [`flags::SOCK_DONE`] count.
    /// - accept: SYN_RECV -> ESTABLISHED of a listener's child, which no
    ///   process holds yet ([`flags::NO_USER_SOCKET`]); a connecting socket
    ///   takes the same transition in a simultaneous open, and a Fast Open
    ///   child accept()ed before the handshake's end is left out.
    fn kind_of(&self, w: &WireEvent) -> Option<EventKind> {
        use TcpState::*;
        if w.kind != EventKind::StateChange as u8 {
            return None;
        }
        let (old, new) = (TcpState::from_kernel(w.oldstate)?, TcpState::from_kernel(w.newstate)?);
        let fin_seen = w.flags & flags::SOCK_DONE != 0;
        if (old, new) == (Close, SynSent) && self.connect {
            Some(EventKind::Connect)
        } else if (old, new) == (SynRecv, Established) && w.flags & flags::NO_USER_SOCKET != 0 && self.accept {
            Some(EventKind::Accept)
        } else if matches!(
            (old, new),
            (Established, FinWait1) | (CloseWait, LastAck) | (SynRecv, FinWait1)
        ) && self.fin_sent
        {
            Some(EventKind::FinSent)
        } else if matches!(
            (old, new),
            (Established, CloseWait) | (SynRecv, CloseWait) | (FinWait1, Closing) | (FinWait2, Close)
        ) && fin_seen
            && self.fin_recv
        {
            Some(EventKind::FinRecv)
        } else {
            None
        }
    }
}

/// The `probe` column text of a wire probe id (`record`'s probe ladders).
pub type ProbeNames = fn(u8) -> Option<String>;

fn no_names(_: u8) -> Option<String> {
    None
}

/// The comm of rows without a known owner.
const NO_COMM: [u8; 16] = [0; 16];

/// Converts wire records into rows of a [`RowBatch`] it fills, in one pass:
/// the wire's ids become the row's (kind, state, family and attribution
/// codes, a probe id registered once per wire probe id), the comm and the
/// addresses are handed over as the kernel's bytes. The batch is taken
/// with [`take`](Self::take) and written by `EventWriter::write_rows`.
pub struct Converter {
    batch: RowBatch,
    /// The batch's id of each wire probe id, registered on first use.
    probes: Vec<Option<ProbeId>>,
    names: ProbeNames,
    inference: Inference,
    /// [`kind_bit`] of each kind wanted (`--kind`; all by
    /// default). The programs let a `state_change` record through when a
    /// kind inferred from it is wanted.
    wanted: u32,
}

impl Default for Converter {
    /// No inference, every kind, no probe names (`unknown:ID`).
    fn default() -> Self {
        Converter::new(Inference::default(), Vec::new(), no_names)
    }
}

impl Converter {
    /// `kinds`: only rows of these kinds (empty: all).
    pub fn new(inference: Inference, kinds: Vec<EventKind>, names: ProbeNames) -> Self {
        let wanted = if kinds.is_empty() {
            u32::MAX
        } else {
            kinds.iter().fold(0, |m, k| m | kind_bit(*k))
        };
        Converter {
            batch: RowBatch::default(),
            probes: vec![None; 256],
            names,
            inference,
            wanted,
        }
    }

    #[inline]
    fn wanted(&self, kind: EventKind) -> bool {
        self.wanted & kind_bit(kind) != 0
    }

    fn probe(&mut self, id: u8) -> ProbeId {
        if let Some(Some(p)) = self.probes.get(usize::from(id)) {
            return *p;
        }
        let name = (self.names)(id).unwrap_or_else(|| format!("unknown:{id}"));
        let p = self.batch.probe(&name);
        self.probes[usize::from(id)] = Some(p);
        p
    }

    /// Rows in the batch being filled.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// The batch filled so far; the converter goes on with `spare` (an
    /// emptied batch to reuse) or a new one.
    pub fn take(&mut self, spare: Option<RowBatch>) -> RowBatch {
        self.batch.take(spare)
    }

    /// The batch being filled.
    pub fn batch(&self) -> &RowBatch {
        &self.batch
    }

    /// Appends the rows of one record, in file order: the record's own row
    /// and the row inferred from it, each unless `--kind` leaves it out.
    /// Returns how many rows it appended.
    #[inline]
    pub fn push(&mut self, w: &WireEvent) -> Result<usize, Reject> {
        let kind = event_kind(w.kind).ok_or(Reject::UnknownKind(w.kind))?;
        let (family, saddr, daddr) = match w.family {
            AF_INET => {
                let v4 = |a: &[u8; 16]| Addr::v4([a[0], a[1], a[2], a[3]]);
                (Family::Inet, v4(&w.saddr), v4(&w.daddr))
            }
            AF_INET6 => (Family::Inet6, Addr::v6(w.saddr), Addr::v6(w.daddr)),
            other => return Err(Reject::UnknownFamily(other)),
        };
        let attribution = attribution_of(w.attribution);
        let known = attribution != Attribution::Unknown && w.pid_tgid != 0;
        let tcp_info = w.flags & flags::TCP_INFO != 0;
        let probe = self.probe(w.probe);
        let mut row = Row {
            mono_ns: i64::try_from(w.ts_ns).unwrap_or(i64::MAX),
            kind,
            pid: if known { (w.pid_tgid >> 32) as u32 } else { 0 },
            tid: if known { w.pid_tgid as u32 } else { 0 },
            comm: Comm::Raw(if known { &w.comm } else { &NO_COMM }),
            family,
            saddr,
            daddr,
            sport: w.sport,
            dport: w.dport,
            oldstate: if kind == EventKind::StateChange {
                TcpState::from_kernel(w.oldstate)
            } else {
                None
            },
            newstate: TcpState::from_kernel(w.newstate),
            sk_err: w.sk_err,
            netns: w.netns,
            stack_id: (w.stack_id != NO_STACK && w.stack_id >= 0).then_some(i64::from(w.stack_id)),
            probe,
            cookie: w.cookie,
            cgroup_id: if known { w.cgroup_id } else { 0 },
            attribution: if known { attribution } else { Attribution::Unknown },
            tcp: TcpInfo {
                snd_wnd: tcp_info.then_some(w.snd_wnd),
                rcv_wnd: tcp_info.then_some(w.rcv_wnd),
                srtt_us: tcp_info.then_some(w.srtt_us),
                snd_cwnd: tcp_info.then_some(w.snd_cwnd),
                bytes_acked: tcp_info.then_some(w.bytes_acked),
                bytes_received: tcp_info.then_some(w.bytes_received),
                window: (w.flags & flags::WINDOW != 0).then_some(w.window),
            },
        };
        let mut rows = 0;
        if self.wanted(kind) {
            self.batch.push(&row);
            rows += 1;
        }
        if let Some(k) = self.inference.kind_of(w).filter(|k| self.wanted(*k)) {
            row.kind = k;
            row.probe = self.probe(probe::INFERRED_SET_STATE);
            row.oldstate = None;
            if k == EventKind::FinRecv {
                // The state the FIN was received in, as tcp_fin() sees it
                // on entry. A FIN is sent in the new state: tcp_send_fin()
                // runs after tcp_close_state() (FIN_WAIT1, LAST_ACK).
                row.newstate = TcpState::from_kernel(w.oldstate);
            }
            self.batch.push(&row);
            rows += 1;
        }
        Ok(rows)
    }

    /// The rows of one record as events (tests and tools; `record` keeps
    /// rows in column buffers): [`push`](Self::push), then the rows back.
    pub fn events(&mut self, w: &WireEvent) -> Result<Vec<Event>, Reject> {
        let before = self.batch.len();
        let n = self.push(w)?;
        Ok((before..before + n).filter_map(|i| self.batch.event(i)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deeptcp_common::probe;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The names of the probes these tests use (`record`'s ladders name them all).
    fn names(id: u8) -> Option<String> {
        let name = match id {
            probe::TP_SET_STATE => "tp_btf:inet_sock_set_state",
            probe::INFERRED_SET_STATE => "inferred:inet_sock_set_state",
            probe::CGROUP_SKB_EGRESS => "cgroup_skb:egress",
            _ => return None,
        };
        Some(name.to_owned())
    }

    fn conv() -> Converter {
        Converter::new(Inference::default(), Vec::new(), names)
    }

    /// The record's own row.
    fn one(c: &mut Converter, w: &WireEvent) -> Event {
        c.events(w).unwrap().remove(0)
    }

    /// Exactly two rows.
    fn two(c: &mut Converter, w: &WireEvent) -> (Event, Event) {
        let mut rows = c.events(w).unwrap();
        assert_eq!(rows.len(), 2, "two rows expected");
        let second = rows.remove(1);
        (rows.remove(0), second)
    }

    fn wire() -> WireEvent {
        let mut w = WireEvent::EMPTY;
        w.ts_ns = 123;
        w.pid_tgid = (4242u64 << 32) | 4243;
        w.cookie = 77;
        w.cgroup_id = 9;
        w.netns = 4026531840;
        w.sport = 5000;
        w.dport = 80;
        w.family = AF_INET;
        w.kind = EventKind::StateChange as u8;
        w.probe = probe::TP_SET_STATE;
        w.attribution = Attribution::Task as u8;
        w.oldstate = 7;
        w.newstate = 2;
        w.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        w.daddr[..4].copy_from_slice(&[10, 1, 2, 3]);
        w.comm[..4].copy_from_slice(b"curl");
        w
    }

    #[test]
    fn ipv4_state_change() {
        let e = one(&mut conv(), &wire());
        assert_eq!((e.pid, e.tid, &*e.comm), (4242, 4243, "curl"));
        assert_eq!(e.saddr.to_string(), "127.0.0.1");
        assert_eq!(e.daddr.to_string(), "10.1.2.3");
        assert_eq!(
            (e.oldstate, e.newstate),
            (Some(TcpState::Close), Some(TcpState::SynSent))
        );
        assert_eq!(
            (e.stack_id, e.family, e.cookie, e.cgroup_id),
            (None, Family::Inet, 77, 9)
        );
        assert_eq!(&*e.probe, "tp_btf:inet_sock_set_state");
        assert_eq!(e.attribution, Attribution::Task);
        assert_eq!(e.tcp, TcpInfo::default(), "no TCP_INFO flag, no tcp fields");
    }

    #[test]
    fn ipv6_mapped_tcp_info_and_window() {
        let mut w = wire();
        w.family = AF_INET6;
        w.kind = EventKind::ZeroWindowSent as u8;
        w.probe = probe::CGROUP_SKB_EGRESS;
        w.attribution = Attribution::Listener as u8;
        w.stack_id = 17;
        w.saddr = Ipv6Addr::LOCALHOST.octets();
        w.daddr = Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped().octets();
        w.flags = flags::TCP_INFO | flags::WINDOW;
        (
            w.snd_wnd,
            w.rcv_wnd,
            w.srtt_us,
            w.snd_cwnd,
            w.bytes_acked,
            w.bytes_received,
        ) = (1, 2, 3, 4, 5, 6);
        let e = one(&mut conv(), &w);
        assert_eq!(e.saddr.to_string(), "::1");
        assert_eq!(e.daddr.to_string(), "192.0.2.1");
        assert_eq!((e.family, e.oldstate, e.stack_id), (Family::Inet6, None, Some(17)));
        assert_eq!(e.kind, EventKind::ZeroWindowSent);
        assert_eq!(&*e.probe, "cgroup_skb:egress");
        assert_eq!(e.attribution, Attribution::Listener);
        assert_eq!(
            e.tcp,
            TcpInfo {
                snd_wnd: Some(1),
                rcv_wnd: Some(2),
                srtt_us: Some(3),
                snd_cwnd: Some(4),
                bytes_acked: Some(5),
                bytes_received: Some(6),
                window: Some(0)
            }
        );
    }

    #[test]
    fn unknown_owner_is_pid_zero_never_the_interrupted_task() {
        let mut w = wire();
        w.attribution = Attribution::Unknown as u8;
        let e = one(&mut conv(), &w);
        assert_eq!((e.pid, e.tid, &*e.comm, e.cgroup_id), (0, 0, "", 0));
        assert_eq!(e.attribution, Attribution::Unknown);
    }

    const ALL_INFERRED: Inference = Inference {
        connect: true,
        accept: true,
        fin_sent: true,
        fin_recv: true,
    };

    fn transition(old: TcpState, new: TcpState) -> WireEvent {
        let mut w = wire();
        (w.oldstate, w.newstate) = (old as u8, new as u8);
        w
    }

    /// (kind, newstate) of the rows of `w`.
    fn kinds(c: &mut Converter, w: &WireEvent) -> Vec<(EventKind, Option<TcpState>)> {
        c.events(w).unwrap().into_iter().map(|e| (e.kind, e.newstate)).collect()
    }

    fn with_flags(mut w: WireEvent, f: u8) -> WireEvent {
        w.flags |= f;
        w
    }

    #[test]
    fn inferred_rows_follow_their_transition() {
        use EventKind::*;
        use TcpState::*;
        let mut c = Converter::new(ALL_INFERRED, Vec::new(), names);
        let sc = StateChange;
        let s = Some;
        assert_eq!(
            kinds(&mut c, &transition(Close, SynSent)),
            [(sc, s(SynSent)), (Connect, s(SynSent))]
        );
        // A listener's child that no process holds yet.
        assert_eq!(
            kinds(
                &mut c,
                &with_flags(transition(SynRecv, Established), flags::NO_USER_SOCKET)
            ),
            [(sc, s(Established)), (Accept, s(Established))]
        );
        // FIN sent rows carry the state tcp_send_fin() runs in (the new
        // one), FIN received rows the one tcp_fin() runs in (the old one).
        for (old, new) in [(Established, FinWait1), (CloseWait, LastAck), (SynRecv, FinWait1)] {
            assert_eq!(kinds(&mut c, &transition(old, new)), [(sc, s(new)), (FinSent, s(new))]);
        }
        for (old, new) in [
            (Established, CloseWait),
            (SynRecv, CloseWait),
            (FinWait1, Closing),
            (FinWait2, Close),
        ] {
            let fin = with_flags(transition(old, new), flags::SOCK_DONE);
            assert_eq!(kinds(&mut c, &fin), [(sc, s(new)), (FinRecv, s(old))]);
        }
    }

    #[test]
    fn transitions_that_also_happen_without_the_event_need_its_flag() {
        use EventKind::*;
        use TcpState::*;
        let mut c = Converter::new(ALL_INFERRED, Vec::new(), names);
        let only_sc = |new| [(StateChange, Some(new))];
        // FinWait2 -> Close without tcp_fin(): handed to a FinWait2
        // time-wait socket, TCP_LINGER2 < 0, a reset (sk_err set or not).
        assert_eq!(kinds(&mut c, &transition(FinWait2, Close)), only_sc(Close));
        let mut reset = transition(FinWait2, Close);
        reset.sk_err = 104;
        assert_eq!(kinds(&mut c, &reset), only_sc(Close));
        // The other FIN rules want tcp_fin()'s mark too.
        for (old, new) in [(Established, CloseWait), (FinWait1, Closing)] {
            assert_eq!(kinds(&mut c, &transition(old, new)), only_sc(new));
        }
        // SynRecv -> Established of a socket a process holds: a
        // simultaneous open, not an accept.
        assert_eq!(kinds(&mut c, &transition(SynRecv, Established)), only_sc(Established));
        // The flags make no row from other transitions.
        let w = with_flags(transition(Established, FinWait1), flags::SOCK_DONE);
        assert_eq!(
            kinds(&mut c, &w),
            [(StateChange, Some(FinWait1)), (FinSent, Some(FinWait1))]
        );
    }

    #[test]
    fn every_row_carries_sk_err_and_the_inferred_row_too() {
        let mut c = Converter::new(ALL_INFERRED, Vec::new(), names);
        let mut w = with_flags(transition(TcpState::FinWait1, TcpState::Closing), flags::SOCK_DONE);
        w.sk_err = 32;
        let (sc, fin) = two(&mut c, &w);
        assert_eq!((sc.sk_err, fin.sk_err), (32, 32));
        let mut w = wire();
        w.kind = EventKind::Retransmit as u8;
        w.sk_err = 110;
        assert_eq!(one(&mut c, &w).sk_err, 110);
    }

    #[test]
    fn unrelated_transitions_infer_nothing() {
        use EventKind::*;
        use TcpState::*;
        let mut c = Converter::new(ALL_INFERRED, Vec::new(), names);
        let sc = StateChange;
        let s = Some;
        for (old, new) in [
            (SynSent, Established),
            (FinWait1, FinWait2),
            (LastAck, Close),
            (Listen, SynRecv),
        ] {
            // Not even with the flags other rules want.
            let w = with_flags(transition(old, new), flags::SOCK_DONE | flags::NO_USER_SOCKET);
            assert_eq!(kinds(&mut c, &w), [(sc, s(new))], "{old:?}->{new:?}");
        }
        // Only state_change records stand for another kind.
        let mut not_sc = transition(Close, SynSent);
        not_sc.kind = EventKind::DestroySock as u8;
        assert_eq!(kinds(&mut c, &not_sc), [(DestroySock, s(SynSent))]);
    }

    #[test]
    fn inferred_row_copies_the_record_but_not_its_oldstate() {
        let mut c = Converter::new(ALL_INFERRED, Vec::new(), names);
        let (sc, connect) = two(&mut c, &transition(TcpState::Close, TcpState::SynSent));
        assert_eq!(&*connect.probe, "inferred:inet_sock_set_state");
        assert_eq!(connect.oldstate, None);
        assert_eq!(
            (
                connect.mono_ns,
                connect.pid,
                connect.cookie,
                connect.saddr,
                connect.attribution
            ),
            (sc.mono_ns, sc.pid, sc.cookie, sc.saddr, sc.attribution)
        );
    }

    #[test]
    fn inference_only_for_rungs_in_use_and_kind_filter_applies() {
        use TcpState::*;
        let status = |kind: &str, probe: &str, used: bool| ProbeStatus {
            kind: kind.into(),
            probe: probe.into(),
            attached: used,
            detail: String::new(),
            rung: 0,
            used,
        };
        let inf = Inference::from_statuses(
            &[
                status("fin_recv", "fentry:tcp_fin", true),
                status("fin_sent", "inferred:inet_sock_set_state", true),
                status("connect", "inferred:inet_sock_set_state", false),
                status("accept", "inferred:inet_sock_set_state", true),
            ],
            "inferred:inet_sock_set_state",
        );
        assert_eq!(
            inf,
            Inference {
                connect: false,
                accept: true,
                fin_sent: true,
                fin_recv: false
            }
        );
        let mut c = Converter::new(inf, Vec::new(), names);
        assert_eq!(
            kinds(
                &mut c,
                &with_flags(transition(Established, CloseWait), flags::SOCK_DONE)
            )
            .len(),
            1,
            "fin_recv has its own probe"
        );
        assert_eq!(
            kinds(&mut c, &transition(Close, SynSent)).len(),
            1,
            "connect not in use"
        );
        // --kind fin_sent: the state_change row that carried it is dropped.
        let mut c = Converter::new(inf, vec![EventKind::FinSent], names);
        assert_eq!(
            kinds(&mut c, &transition(Established, FinWait1)),
            [(EventKind::FinSent, Some(FinWait1))]
        );
        assert!(kinds(&mut c, &transition(SynSent, Established)).is_empty());
    }

    #[test]
    fn bad_records_are_rejected_without_a_row() {
        let mut c = conv();
        let mut w = wire();
        w.kind = 99;
        assert_eq!(c.events(&w), Err(Reject::UnknownKind(99)));
        let mut w = wire();
        w.family = 1;
        assert_eq!(c.events(&w), Err(Reject::UnknownFamily(1)));
        assert!(c.is_empty(), "a rejected record leaves no row");
        let mut w = wire();
        w.newstate = 200;
        assert_eq!(one(&mut c, &w).newstate, None);
        // Bytes after the comm's NUL are not part of it.
        let mut w = wire();
        w.comm[5..8].copy_from_slice(b"xyz");
        assert_eq!(&*one(&mut c, &w).comm, "curl");
    }

    #[test]
    fn batches_are_handed_over_with_their_probe_names() {
        let mut c = conv();
        c.push(&wire()).unwrap();
        let full = c.take(None);
        assert!(c.is_empty());
        c.push(&wire()).unwrap();
        let next = c.take(None);
        for b in [&full, &next] {
            assert_eq!(&*b.event(0).unwrap().probe, "tp_btf:inet_sock_set_state");
            assert_eq!(&*b.event(0).unwrap().comm, "curl");
        }
    }
}
