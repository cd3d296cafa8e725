//! `--report`: a [`Report`] as one self-contained HTML page, for people
//! who would rather look than read.
//!
//! Everything is in the file: the charts are inline SVG drawn here
//! (server-side), the CSS and the little script (tooltips, and a
//! `data-rendered` marker on `<body>` that tests look for) are inline, and
//! nothing refers to another file or address, so the page opens offline
//! and from an e-mail attachment alike. Every string that comes from a
//! recording (host, comm, file names, reasons) has its control characters
//! escaped ([`sanitized`]) and is then HTML-escaped ([`esc`]).
//!
//! The page: totals, connections and failures over time (bars per time
//! bucket: blue for connections started, red for connections that failed,
//! at their end), handshake-latency and smoothed-RTT histograms over
//! log-scaled bins with their percentiles, failures by reason, and a
//! timeline lane per "most interesting" connection (see
//! [`crate::report::Interest`]): its states as coloured spans, retransmits,
//! loss probes, RSTs, zero windows and socket errors as marks, each lane
//! scaled to its connection's lifetime, with a legend.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;

use deeptcp_format::{EventKind, TcpState};
use deeptcp_view::errno;

use crate::conn::Conn;
use crate::render::json::Rfc3339;
use crate::render::sanitized;
use crate::report::{label, lifetime_end, spans, LogBins, Report, BINS_PER_DECADE, LANES};
use crate::stats::Histogram;

/// Colour of the connections-started bars.
pub const CONN_COLOUR: &str = "#2563eb";
/// Colour of the failed-connections bars.
pub const FAIL_COLOUR: &str = "#dc2626";
/// Colour of the handshake histogram.
pub const HANDSHAKE_COLOUR: &str = "#0d9488";
/// Colour of the RTT histogram.
pub const RTT_COLOUR: &str = "#7c3aed";

/// What [`render`] shows.
pub struct Page<'a> {
    pub report: &'a Report,
    pub hosts: &'a [Arc<str>],
    pub inputs: &'a [String],
    /// Filters selected the connections.
    pub filtered: bool,
}

/// The colour of a state's spans.
pub fn state_colour(s: TcpState) -> &'static str {
    use TcpState::*;
    match s {
        SynSent | SynRecv | NewSynRecv => "#f59e0b",
        Established => "#16a34a",
        FinWait1 => "#60a5fa",
        FinWait2 => "#93c5fd",
        CloseWait => "#a78bfa",
        LastAck => "#c4b5fd",
        Closing => "#f472b6",
        TimeWait => "#9ca3af",
        Listen => "#64748b",
        _ => "#d1d5db",
    }
}

/// The marks' legend entries: kinds, colour, label.
const MARKS: &[(&[EventKind], &str, &str)] = &[
    (
        &[EventKind::Retransmit, EventKind::RetransmitSynack],
        "#ea580c",
        "retransmit",
    ),
    (&[EventKind::LossProbe], "#ca8a04", "loss probe"),
    (&[EventKind::ResetRecv], "#b91c1c", "RST received"),
    (&[EventKind::ResetSent], "#7f1d1d", "RST sent"),
    (
        &[EventKind::ZeroWindowRecv, EventKind::ZeroWindowSent],
        "#9333ea",
        "zero window",
    ),
    (&[EventKind::SockError], "#111827", "socket error"),
];

/// States in the legend.
const LEGEND_STATES: &[TcpState] = &[
    TcpState::SynSent,
    TcpState::Established,
    TcpState::FinWait1,
    TcpState::FinWait2,
    TcpState::CloseWait,
    TcpState::LastAck,
    TcpState::TimeWait,
    TcpState::Listen,
];

const STYLE: &str = "\
body{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;margin:20px 30px;color:#111827;background:#ffffff}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:18px 0 6px}\
.meta{color:#4b5563;font-size:12px;margin:2px 0}\
.cards{display:flex;gap:10px;margin:12px 0;flex-wrap:wrap}\
.card{border:1px solid #e5e7eb;border-radius:6px;padding:6px 12px;min-width:110px}\
.card b{display:block;font-size:20px}.card span{font-size:12px;color:#4b5563}\
.row{display:flex;gap:20px;flex-wrap:wrap}\
svg{display:block}svg text{font-size:11px;fill:#374151}\
.note{font-size:12px;color:#4b5563;margin:2px 0 6px}\
table{border-collapse:collapse;font-size:12px}td,th{border-bottom:1px solid #e5e7eb;padding:2px 10px;text-align:left}\
td.n{text-align:right}\
#tip{position:fixed;display:none;background:#111827;color:#f9fafb;font-size:12px;padding:4px 8px;border-radius:4px;pointer-events:none;white-space:pre}";

/// Tooltips from each element's `data-tip`, and the `data-rendered`
/// marker: `ok` when every chart is in the page.
const SCRIPT: &str = r#"(function () {
  var tip = document.getElementById('tip');
  document.querySelectorAll('[data-tip]').forEach(function (el) {
    el.addEventListener('mousemove', function (e) {
      tip.textContent = el.getAttribute('data-tip');
      tip.style.display = 'block';
      tip.style.left = (e.clientX + 12) + 'px';
      tip.style.top = (e.clientY + 12) + 'px';
    });
    el.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  });
  var charts = document.querySelectorAll('svg.chart').length;
  document.body.setAttribute('data-charts', String(charts));
  document.body.setAttribute('data-rendered', charts >= 4 ? 'ok' : 'incomplete');
})();"#;

/// Writes the page.
pub fn render(out: &mut dyn Write, page: &Page<'_>) -> anyhow::Result<()> {
    let html = page_html(page);
    out.write_all(html.as_bytes()).map_err(crate::app::output)?;
    Ok(())
}

/// Text from a recording or the command line, made safe for HTML text and
/// attribute values (control characters escaped first).
pub fn esc(s: &str) -> String {
    let s = sanitized(s);
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A duration for people: `850 ns`, `12.3 µs`, `1.23 ms`, `2.50 s`.
pub fn human_ns(ns: i64) -> String {
    let a = ns.unsigned_abs() as f64;
    let sign = if ns < 0 { "-" } else { "" };
    let (v, unit) = if a < 1e3 {
        return format!("{ns} ns");
    } else if a < 1e6 {
        (a / 1e3, "\u{b5}s")
    } else if a < 1e9 {
        (a / 1e6, "ms")
    } else {
        (a / 1e9, "s")
    };
    let digits = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{sign}{v:.digits$} {unit}")
}

fn page_html(page: &Page<'_>) -> String {
    let r = page.report;
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width\"><title>deeptcp report</title>");
    let _ = write!(h, "<style>{STYLE}</style></head>\n<body data-rendered=\"no\">\n");
    h.push_str("<h1>deeptcp report</h1>\n");
    let hosts: Vec<String> = page.hosts.iter().map(|s| esc(s)).collect();
    let inputs: Vec<String> = page.inputs.iter().map(|s| esc(s)).collect();
    let _ = writeln!(h, "<p class=\"meta\">host: {}</p>", hosts.join(", "));
    let _ = writeln!(h, "<p class=\"meta\">recording: {}</p>", inputs.join(", "));
    if let (Some(a), Some(b)) = (r.first_ts, r.last_ts) {
        let _ = writeln!(
            h,
            "<p class=\"meta\">connections from {} to {} ({})</p>",
            esc(&rfc3339(a)),
            esc(&rfc3339(b)),
            human_ns(b.saturating_sub(a))
        );
    }
    if page.filtered {
        h.push_str("<p class=\"meta\">filtered: only connections with an event that matches the filters</p>\n");
    }
    cards(&mut h, r);

    h.push_str("<section id=\"over-time\"><h2>Connections and failures over time</h2>\n");
    let _ = writeln!(
        h,
        "<p class=\"note\">per {}: <span style=\"color:{CONN_COLOUR}\">&#9632;</span> connections started, \
         <span style=\"color:{FAIL_COLOUR}\">&#9632;</span> connections that failed (refused, timed out, reset, error), at their end</p>",
        human_ns(r.series.width_ns)
    );
    over_time(&mut h, r);
    h.push_str("</section>\n<div class=\"row\">\n");
    histogram(
        &mut h,
        "handshake",
        "Handshake latency",
        "SYN_SENT/SYN_RECV \u{2192} ESTABLISHED",
        &r.handshake,
        &r.handshake_pct,
        HANDSHAKE_COLOUR,
    );
    histogram(
        &mut h,
        "rtt",
        "Smoothed RTT",
        "each connection's last sample",
        &r.rtt,
        &r.rtt_pct,
        RTT_COLOUR,
    );
    h.push_str("</div>\n");
    failures(&mut h, r);
    timeline(&mut h, r);
    h.push_str("<div id=\"tip\"></div>\n");
    let _ = write!(h, "<script>{SCRIPT}</script>\n</body></html>\n");
    h
}

fn rfc3339(ns: i64) -> String {
    serde_json::to_value(Rfc3339(ns))
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn cards(h: &mut String, r: &Report) {
    h.push_str("<div class=\"cards\">");
    for (n, what) in [
        (r.connections, "connections"),
        (r.failures, "failed"),
        (r.still_open, "still open"),
        (r.retransmits, "retransmits"),
        (r.resets, "RSTs"),
        (r.zero_window_stalls, "zero-window stalls"),
        (r.errors, "socket errors"),
    ] {
        let _ = write!(h, "<div class=\"card\"><b>{n}</b><span>{what}</span></div>");
    }
    h.push_str("</div>\n");
}

/// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten.
fn nice_max(v: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if let Some(n) = p.checked_mul(m) {
                if n >= v.max(1) {
                    return n;
                }
            }
        }
        match p.checked_mul(10) {
            Some(n) => p = n,
            None => return v,
        }
    }
}

/// Divisions of an axis up to `max` (a [`nice_max`]) whose labels are whole numbers.
fn axis_steps(max: u64) -> u64 {
    if max <= 5 {
        return max.max(1);
    }
    let mut lead = max;
    while lead >= 10 && lead.is_multiple_of(10) {
        lead /= 10;
    }
    if lead == 2 {
        4
    } else {
        5
    }
}

/// Horizontal grid lines and y labels of a count axis.
fn y_axis(h: &mut String, left: f64, top: f64, width: f64, height: f64, max: u64) {
    let steps = axis_steps(max);
    for i in 0..=steps {
        let y = top + height - height * i as f64 / steps as f64;
        let v = max * i / steps;
        let _ = write!(
            h,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            left + width,
            left - 4.0,
            y + 4.0
        );
    }
}

fn over_time(h: &mut String, r: &Report) {
    let (w, ht) = (1300.0, 240.0);
    let (left, top, pw, ph) = (50.0, 10.0, w - 70.0, ht - 40.0);
    let b = &r.series.buckets;
    let n = b.len().max(1);
    let max = nice_max(b.iter().map(|x| x.0.max(x.1)).max().unwrap_or(0));
    let _ = write!(
        h,
        "<svg class=\"chart\" id=\"chart-over-time\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-label=\"connections and failures over time\">"
    );
    y_axis(h, left, top, pw, ph, max);
    let bw = pw / n as f64;
    for (i, &(conns, fails)) in b.iter().enumerate() {
        let x = left + bw * i as f64;
        let from = r.series.width_ns.saturating_mul(i as i64);
        let tip = format!(
            "+{} \u{2026} +{}\n{conns} connections started\n{fails} failed",
            human_ns(from),
            human_ns(from.saturating_add(r.series.width_ns))
        );
        for (v, colour, dx, frac) in [(conns, CONN_COLOUR, 0.0, 1.0), (fails, FAIL_COLOUR, 0.5, 0.5)] {
            if v == 0 {
                continue;
            }
            let bh = ph * v as f64 / max as f64;
            let _ = write!(
                h,
                "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{bh:.2}\" fill=\"{colour}\" data-tip=\"{}\"/>",
                x + bw * dx,
                top + ph - bh,
                (bw * frac - if bw > 3.0 { 1.0 } else { 0.0 }).max(0.5),
                esc(&tip)
            );
        }
    }
    // Time ticks: about 8, at bucket edges.
    let step = n.div_ceil(8).max(1);
    for i in (0..=n).step_by(step) {
        let x = left + bw * i as f64;
        let t = r.series.width_ns.saturating_mul(i as i64);
        let _ = write!(
            h,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#9ca3af\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">+{}</text>",
            top + ph,
            top + ph + 4.0,
            top + ph + 16.0,
            human_ns(t)
        );
    }
    let _ = writeln!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">time since the recording started</text></svg>",
        left + pw,
        ht - 2.0
    );
}

fn histogram(h: &mut String, id: &str, title: &str, what: &str, bins: &LogBins, pct: &Histogram, colour: &str) {
    let edges = LogBins::edges();
    let _ = write!(h, "<section id=\"{id}\"><h2>{title}</h2><p class=\"note\">{what}; ");
    match pct.summary() {
        Some(s) => {
            let _ = write!(
                h,
                "{} connections, p50 {}, p90 {}, p99 {}, max {}",
                s.count,
                human_ns(s.p50 as i64),
                human_ns(s.p90 as i64),
                human_ns(s.p99 as i64),
                human_ns(s.max as i64)
            );
        }
        None => h.push_str("none recorded"),
    }
    h.push_str("</p>\n");
    let (w, ht) = (640.0, 240.0);
    let (left, top, pw, ph) = (50.0, 10.0, w - 70.0, ht - 40.0);
    // Bins shown: whole decades around the non-empty ones.
    let per = BINS_PER_DECADE as usize;
    let used: Vec<usize> = (0..bins.counts.len()).filter(|&i| bins.counts[i] > 0).collect();
    let (lo, hi) = match (used.first(), used.last()) {
        (Some(&a), Some(&b)) => ((a.saturating_sub(1) / per) * per, ((b / per) + 1) * per),
        _ => (0, 3 * per),
    };
    let hi = hi.max(lo + 2 * per).min(bins.counts.len());
    let max = nice_max(bins.counts[lo..hi].iter().copied().max().unwrap_or(0));
    let _ = write!(
        h,
        "<svg class=\"chart\" id=\"chart-{id}\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-label=\"{title} histogram\">"
    );
    y_axis(h, left, top, pw, ph, max);
    let bw = pw / (hi - lo) as f64;
    for i in lo..hi {
        let n = bins.counts[i];
        let x = left + bw * (i - lo) as f64;
        if n > 0 {
            let bh = ph * n as f64 / max as f64;
            let range = match i {
                0 => format!("< {}", human_ns(edges[0] as i64)),
                i if i == edges.len() => format!("\u{2265} {}", human_ns(edges[i - 1] as i64)),
                i => format!(
                    "{} \u{2026} {}",
                    human_ns(edges[i - 1] as i64),
                    human_ns(edges[i] as i64)
                ),
            };
            let _ = write!(
                h,
                "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{bh:.2}\" fill=\"{colour}\" data-tip=\"{}\"/>",
                x + 0.5,
                top + ph - bh,
                (bw - 1.0).max(0.5),
                esc(&format!("{range}: {n}"))
            );
        }
        // Bin i starts at edge i-1: label the decades.
        if i >= 1 && (i - 1) % per == 0 {
            let _ = write!(
                h,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#9ca3af\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                top + ph,
                top + ph + 4.0,
                top + ph + 16.0,
                human_ns(edges[i - 1] as i64)
            );
        }
    }
    h.push_str("</svg></section>\n");
}

fn failures(h: &mut String, r: &Report) {
    if r.failures_by_reason.is_empty() {
        return;
    }
    h.push_str(
        "<section id=\"failures\"><h2>Failures by reason</h2><table><tr><th>reason</th><th>connections</th></tr>",
    );
    for (reason, n) in &r.failures_by_reason {
        let _ = write!(h, "<tr><td>{}</td><td class=\"n\">{n}</td></tr>", esc(reason));
    }
    h.push_str("</table></section>\n");
}

/// Colour and legend label of a mark kind.
fn mark_style(kind: EventKind) -> (&'static str, &'static str) {
    MARKS
        .iter()
        .find(|(kinds, _, _)| kinds.contains(&kind))
        .map_or(("#111827", "event"), |&(_, c, l)| (c, l))
}

fn legend(h: &mut String) {
    let mut x = 0.0;
    let _ = write!(h, "<svg class=\"legend\" width=\"1300\" height=\"22\">");
    for &s in LEGEND_STATES {
        let _ = write!(
            h,
            "<rect x=\"{x}\" y=\"5\" width=\"14\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"15\">{}</text>",
            state_colour(s),
            x + 18.0,
            s.name()
        );
        x += 26.0 + 7.0 * s.name().len() as f64;
    }
    for &(kinds, colour, name) in MARKS {
        mark_shape(h, kinds[0], x + 6.0, 11.0, colour);
        let _ = write!(h, "<text x=\"{}\" y=\"15\">{name}</text>", x + 16.0);
        x += 26.0 + 7.0 * name.len() as f64;
    }
    h.push_str("</svg>\n");
}

/// The shape of a mark centred at (x, y).
fn mark_shape(h: &mut String, kind: EventKind, x: f64, y: f64, colour: &str) {
    match kind {
        EventKind::ResetRecv | EventKind::ResetSent => {
            let _ = write!(
                h,
                "<path d=\"M{:.2} {:.2}L{:.2} {:.2}L{x:.2} {:.2}Z\" fill=\"{colour}\"/>",
                x - 5.0,
                y - 6.0,
                x + 5.0,
                y - 6.0,
                y + 6.0
            );
        }
        EventKind::ZeroWindowRecv | EventKind::ZeroWindowSent => {
            let _ = write!(
                h,
                "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"9\" height=\"9\" fill=\"{colour}\"/>",
                x - 4.5,
                y - 4.5
            );
        }
        EventKind::SockError => {
            let _ = write!(
                h,
                "<path d=\"M{:.2} {:.2}L{:.2} {:.2}M{:.2} {:.2}L{:.2} {:.2}\" stroke=\"{colour}\" stroke-width=\"2.5\"/>",
                x - 5.0,
                y - 5.0,
                x + 5.0,
                y + 5.0,
                x - 5.0,
                y + 5.0,
                x + 5.0,
                y - 5.0
            );
        }
        _ => {
            let _ = write!(
                h,
                "<path d=\"M{x:.2} {:.2}L{:.2} {:.2}L{:.2} {:.2}Z\" fill=\"{colour}\"/>",
                y - 6.0,
                x + 5.0,
                y + 6.0,
                x - 5.0,
                y + 6.0
            );
        }
    }
}

/// Why a lane was chosen, in a few words.
fn why(c: &Conn) -> String {
    let mut parts: Vec<String> = vec![c.reason.to_string()];
    if c.retransmits > 0 {
        parts.push(format!("{} retrans", c.retransmits));
    }
    if c.zero_window_stalls > 0 {
        parts.push(format!("{} zero-window stalls", c.zero_window_stalls));
    }
    if let Some(ns) = c.handshake_ns {
        parts.push(format!("handshake {}", human_ns(ns)));
    }
    parts.join(" \u{b7} ")
}

fn timeline(h: &mut String, r: &Report) {
    let lanes = r.lanes();
    let _ = writeln!(
        h,
        "<section id=\"timeline\"><h2>Timeline: the {} most interesting connections</h2>\
         <p class=\"note\">at most {LANES}: failed first, then by retransmits, RSTs, socket errors and zero-window stalls, \
         then by handshake time; one lane each, by start, scaled to the connection's lifetime (its length on the right)</p>",
        lanes.len()
    );
    legend(h);
    let (label_w, bar_w, right_w, lane_h) = (330.0, 700.0, 270.0, 24.0);
    let w = label_w + bar_w + right_w;
    let ht = lane_h * lanes.len().max(1) as f64 + 4.0;
    let _ = write!(
        h,
        "<svg class=\"chart\" id=\"chart-timeline\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-label=\"connection timeline\">"
    );
    if lanes.is_empty() {
        h.push_str("<text x=\"10\" y=\"16\">no connections</text>");
    }
    for (i, c) in lanes.iter().enumerate() {
        let y = lane_h * i as f64 + 2.0;
        let start = c.first_ts;
        let life = lifetime_end(c).saturating_sub(start).max(1);
        let x_of = |ts: i64| label_w + bar_w * (ts.saturating_sub(start).clamp(0, life) as f64 / life as f64);
        let name = label(c);
        let _ = write!(
            h,
            "<g class=\"lane\"><rect x=\"0\" y=\"{y:.1}\" width=\"{w}\" height=\"{lane_h}\" fill=\"{}\"/>\
             <text x=\"4\" y=\"{:.1}\" data-tip=\"{}\">{}</text>",
            if i % 2 == 0 { "#f9fafb" } else { "#ffffff" },
            y + 16.0,
            esc(&format!("{name}\nstarted {}\n{}", rfc3339(start), c.path)),
            esc(&truncate(&name, 46))
        );
        for s in spans(c) {
            let x = x_of(s.start);
            let sw = (x_of(s.end) - x).max(1.0);
            let _ = write!(
                h,
                "<rect x=\"{x:.2}\" y=\"{:.1}\" width=\"{sw:.2}\" height=\"{:.1}\" fill=\"{}\" data-tip=\"{}\"/>",
                y + 4.0,
                lane_h - 8.0,
                state_colour(s.state),
                esc(&format!("{} for {}", s.state.name(), human_ns(s.end - s.start)))
            );
        }
        for m in &c.marks {
            let (colour, what) = mark_style(m.kind);
            let what = match (m.kind, errno::name(m.sk_err)) {
                (EventKind::SockError, Some(e)) => format!("{what} {e}"),
                _ => format!("{what} ({})", m.kind.as_str()),
            };
            let _ = write!(
                h,
                "<g data-tip=\"{}\">",
                esc(&format!("{what} at +{}", human_ns(m.ts - start)))
            );
            mark_shape(h, m.kind, x_of(m.ts), y + lane_h / 2.0, colour);
            h.push_str("</g>");
        }
        if c.marks_dropped > 0 {
            let _ = write!(
                h,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">+{} marks</text>",
                label_w + bar_w - 2.0,
                y + 10.0,
                c.marks_dropped
            );
        }
        let reason = why(c);
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" data-tip=\"{}\">{} \u{b7} {}</text></g>",
            label_w + bar_w + 8.0,
            y + 16.0,
            esc(&reason),
            human_ns(lifetime_end(c) - start),
            esc(&truncate(&reason, 34))
        );
    }
    h.push_str("</svg></section>\n");
}

/// `s` cut to `n` characters, with an ellipsis when cut.
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push('\u{2026}');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html_and_control_characters() {
        assert_eq!(esc("<b a='x'>&\"</b>"), "&lt;b a=&#39;x&#39;&gt;&amp;&quot;&lt;/b&gt;");
        assert_eq!(esc("a\x1bb"), "a\\u{1b}b");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_ns(850), "850 ns");
        assert_eq!(human_ns(12_345), "12.3 \u{b5}s");
        assert_eq!(human_ns(1_234_567), "1.23 ms");
        assert_eq!(human_ns(2_500_000_000), "2.50 s");
        assert_eq!(human_ns(250_000_000_000), "250 s");
    }

    #[test]
    fn nice_axis() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(101), 200);
        for max in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] {
            let steps = axis_steps(max);
            assert_eq!(max % steps, 0, "{max}");
            assert!((1..=5).contains(&steps));
        }
    }

    #[test]
    fn empty_report_is_a_page_without_urls() {
        let r = Report::new(0);
        let page = Page {
            report: &r,
            hosts: &[Arc::from("h<1>")],
            inputs: &["a&b.parquet".to_string()],
            filtered: false,
        };
        let mut out = Vec::new();
        render(&mut out, &page).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("host: h&lt;1&gt;"), "{s}");
        assert!(s.contains("a&amp;b.parquet"));
        assert!(!s.contains("http:") && !s.contains("https:"));
        assert_eq!(s.matches("<svg class=\"chart\"").count(), 4);
    }
}
