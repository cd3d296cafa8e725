//! The three small vocabularies both sides of the ring buffer and the file
//! share: what happened ([`EventKind`]), who the row is attributed to
//! ([`Attribution`]) and the kernel's TCP states ([`TcpState`]).
//!
//! Each is written once, here, with its wire value and its name: the eBPF
//! programs store `as u8` values in [`crate::WireEvent`], `record` maps them
//! back with `from_u8`, and `deeptcp-format` stores the names in the file
//! and codes rows by the position in `ALL`. A new variant added here is
//! therefore known to all of them at once.

/// Defines a `#[repr(u8)]` enum from one list of `Variant = value => "name"`
/// and generates, from that list only: `ALL` (declaration order, which is
/// the order of the file's codes), the string accessor, the parser, the
/// `u8` constructor and `code` (the position in `ALL`).
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { str: $as_str:ident, from: $from:ident }
        {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )+
        }

        impl $name {
            /// Every variant, in declaration order: a variant's position
            /// here is its [`Self::code`].
            pub const ALL: [$name; [$($value),+].len()] = [$($name::$variant),+];

            /// Position of each wire value in `ALL` (`u8::MAX`: none).
            const CODES: [u8; 256] = {
                let mut t = [u8::MAX; 256];
                let mut i = 0;
                while i < Self::ALL.len() {
                    t[Self::ALL[i] as usize] = i as u8;
                    i += 1;
                }
                t
            };

            /// The name (the text stored in the file, accepted by the CLIs).
            pub const fn $as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The variant whose name is `s`.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// The variant with wire value `v`; `None` for values not defined.
            #[inline]
            pub const fn $from(v: u8) -> Option<Self> {
                match v {
                    $( $value => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// Position in [`Self::ALL`]: the dense code rows carry.
            #[inline]
            pub const fn code(self) -> u8 {
                Self::CODES[self as usize]
            }
        }
    };
}

wire_enum! {
    /// What happened: [`crate::WireEvent::kind`] on the wire (`as u8`), the
    /// `kind` column's text in the file.
    ///
    /// Schema v1 files hold only the first six kinds; v2 added the rest.
    pub enum EventKind { str: as_str, from: from_u8 } {
        /// TCP state transition (`sock:inet_sock_set_state`).
        StateChange = 1 => "state_change",
        /// Segment retransmitted (`tcp:tcp_retransmit_skb`).
        Retransmit = 2 => "retransmit",
        /// RST received (`tcp:tcp_receive_reset`).
        ResetRecv = 3 => "reset_recv",
        /// RST sent (`tcp:tcp_send_reset`).
        ResetSent = 4 => "reset_sent",
        /// Error reported on the socket (`sock:inet_sk_error_report`); see `sk_err`.
        SockError = 5 => "sock_error",
        /// Socket freed (`tcp:tcp_destroy_sock`).
        DestroySock = 6 => "destroy_sock",
        /// FIN received (`tcp_fin()`, or inferred from the state transition).
        FinRecv = 7 => "fin_recv",
        /// FIN sent (`tcp_send_fin()`, or inferred from the state transition).
        FinSent = 8 => "fin_sent",
        /// Segment received advertising a zero window (the peer's buffer is full).
        ZeroWindowRecv = 9 => "zero_window_recv",
        /// Segment sent advertising a zero window (our receive buffer is full).
        ZeroWindowSent = 10 => "zero_window_sent",
        /// Active open: `connect()` started (CLOSE -> SYN_SENT).
        Connect = 11 => "connect",
        /// Passive open: a connection to a listener was established (SYN_RECV -> ESTABLISHED).
        Accept = 12 => "accept",
        /// Tail loss probe sent (not a real retransmission).
        LossProbe = 13 => "loss_probe",
        /// SYN-ACK retransmitted (`tcp:tcp_retransmit_synack`).
        RetransmitSynack = 14 => "retransmit_synack",
        /// A socket that existed when recording started (start-up snapshot,
        /// like `ss -tanp`). Made by `record`, never sent by the programs.
        Snapshot = 15 => "snapshot",
    }
}

impl EventKind {
    /// Whether the programs send this kind: snapshot rows are made by
    /// `record` itself, never by a program.
    pub const fn on_wire(self) -> bool {
        !matches!(self, EventKind::Snapshot)
    }
}

wire_enum! {
    /// How a row's pid/tid/comm were attributed:
    /// [`crate::WireEvent::attribution`] on the wire, the `attribution`
    /// column's text in the file.
    #[derive(Default)]
    pub enum Attribution { str: as_str, from: from_u8 } {
        /// The event fired in process context of the socket's owner (connect, listen, close, send).
        Task = 1 => "task",
        /// The socket's owner, remembered in the kernel from an earlier
        /// process-context event (the `OWNERS` map).
        Owner = 2 => "owner",
        /// An accepted socket: owner inherited from its listener.
        Listener = 3 => "listener",
        /// The start-up snapshot of sockets (owners from `/proc/*/fd`,
        /// through `TUPLE_OWNERS` in the kernel).
        Snapshot = 4 => "snapshot",
        /// Filled in by `analyze` from other rows of the same connection
        /// (never sent, never stored).
        Backfill = 5 => "backfill",
        /// Nobody known: pid is 0 and shown as N/A. Also every v1 row.
        #[default]
        Unknown = 0 => "unknown",
    }
}

wire_enum! {
    /// Kernel TCP states (`include/net/tcp_states.h`), named as the kernel
    /// and the seed tool name them: `oldstate`/`newstate` on the wire and in
    /// the file.
    pub enum TcpState { str: name, from: from_kernel } {
        Established = 1 => "ESTABLISHED",
        SynSent = 2 => "SYN_SENT",
        SynRecv = 3 => "SYN_RECV",
        FinWait1 = 4 => "FIN_WAIT1",
        FinWait2 = 5 => "FIN_WAIT2",
        TimeWait = 6 => "TIME_WAIT",
        Close = 7 => "CLOSE",
        CloseWait = 8 => "CLOSE_WAIT",
        LastAck = 9 => "LAST_ACK",
        Listen = 10 => "LISTEN",
        Closing = 11 => "CLOSING",
        NewSynRecv = 12 => "NEW_SYN_RECV",
        BoundInactive = 13 => "BOUND_INACTIVE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_positions_in_all_and_values_round_trip() {
        for (i, k) in EventKind::ALL.iter().enumerate() {
            assert_eq!(usize::from(k.code()), i);
            assert_eq!(EventKind::from_u8(*k as u8), Some(*k));
            assert_eq!(EventKind::parse(k.as_str()), Some(*k));
        }
        for (i, a) in Attribution::ALL.iter().enumerate() {
            assert_eq!(usize::from(a.code()), i);
            assert_eq!(Attribution::from_u8(*a as u8), Some(*a));
            assert_eq!(Attribution::parse(a.as_str()), Some(*a));
        }
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(usize::from(s.code()), i);
            assert_eq!(TcpState::from_kernel(*s as u8), Some(*s));
            assert_eq!(TcpState::parse(s.name()), Some(*s));
        }
    }

    #[test]
    fn wire_values_are_the_kernels_and_the_programs() {
        // The values the programs send and the kernel defines; a change here
        // is a wire change (record and the programs are built together, but
        // TCP states come from include/net/tcp_states.h).
        assert_eq!(EventKind::StateChange as u8, 1);
        assert_eq!(EventKind::RetransmitSynack as u8, 14);
        assert_eq!(Attribution::Unknown as u8, 0);
        assert_eq!(Attribution::Snapshot as u8, 4);
        assert_eq!(TcpState::Established as u8, 1);
        assert_eq!(TcpState::NewSynRecv as u8, 12);
        assert_eq!(EventKind::from_u8(0), None);
        assert_eq!(EventKind::from_u8(16), None);
        assert_eq!(TcpState::from_kernel(0), None);
        assert_eq!(TcpState::from_kernel(14), None);
        assert_eq!(Attribution::from_u8(6), None);
        assert_eq!(EventKind::parse("nope"), None);
        assert_eq!(Attribution::default(), Attribution::Unknown);
        assert!(EventKind::StateChange.on_wire() && !EventKind::Snapshot.on_wire());
    }
}
