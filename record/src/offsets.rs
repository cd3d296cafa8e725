//! Which kernel struct fields (and flag bits) the eBPF programs read,
//! resolved against the running kernel's BTF into [`deeptcp_common::Offsets`].

use anyhow::{Context, Result};
use deeptcp_common::Offsets;

use crate::btf::KernelBtf;

/// Resolves every offset the programs need, failing with the first field the
/// kernel does not have (naming it).
pub fn resolve(btf: &KernelBtf) -> Result<Offsets> {
    let f = |strukt: &str, path: &str, size: u32| {
        btf.field_offset(strukt, path, Some(size))
            .with_context(|| format!("resolving {strukt}.{path} from kernel BTF"))
    };
    Ok(Offsets {
        skc_daddr: f("sock", "__sk_common.skc_daddr", 4)?,
        skc_rcv_saddr: f("sock", "__sk_common.skc_rcv_saddr", 4)?,
        skc_dport: f("sock", "__sk_common.skc_dport", 2)?,
        skc_num: f("sock", "__sk_common.skc_num", 2)?,
        skc_family: f("sock", "__sk_common.skc_family", 2)?,
        skc_state: f("sock", "__sk_common.skc_state", 1)?,
        skc_net: f("sock", "__sk_common.skc_net", 8)?,
        skc_v6_daddr: f("sock", "__sk_common.skc_v6_daddr", 16)?,
        skc_v6_rcv_saddr: f("sock", "__sk_common.skc_v6_rcv_saddr", 16)?,
        skc_cookie: f("sock", "__sk_common.skc_cookie", 8)?,
        sk_protocol: f("sock", "sk_protocol", 2)?,
        sk_err: f("sock", "sk_err", 4)?,
        inet_sport: f("inet_sock", "inet_sport", 2)?,
        net_ns_inum: f("net", "ns.inum", 4)?,
        skb_head: f("sk_buff", "head", 8)?,
        skb_data: f("sk_buff", "data", 8)?,
        skb_network_header: f("sk_buff", "network_header", 2)?,
        tcp_snd_wnd: f("tcp_sock", "snd_wnd", 4)?,
        tcp_rcv_wnd: f("tcp_sock", "rcv_wnd", 4)?,
        tcp_srtt_us: f("tcp_sock", "srtt_us", 4)?,
        tcp_snd_cwnd: f("tcp_sock", "snd_cwnd", 4)?,
        tcp_bytes_acked: f("tcp_sock", "bytes_acked", 8)?,
        tcp_bytes_received: f("tcp_sock", "bytes_received", 8)?,
        skb_dev: f("sk_buff", "dev", 8)?,
        dev_nd_net: f("net_device", "nd_net", 8)?,
        skc_flags: f("sock", "__sk_common.skc_flags", 8)?,
        sk_socket: f("sock", "sk_socket", 8)?,
        sock_done_bit: sock_done_bit(btf)?,
    })
}

/// The bit of `SOCK_DONE` in `sk_flags` (`tcp_fin()` sets it): a bit
/// number the programs can shift by, from `enum sock_flags`.
fn sock_done_bit(btf: &KernelBtf) -> Result<u32> {
    let v = btf
        .enum_value("sock_flags", "SOCK_DONE")
        .context("resolving enum sock_flags.SOCK_DONE from kernel BTF")?;
    u32::try_from(v)
        .ok()
        .filter(|bit| *bit < 64)
        .with_context(|| format!("SOCK_DONE is {v} in kernel BTF, not a bit of the 64-bit sk_flags"))
}
