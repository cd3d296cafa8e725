//! Live output while recording: `record` without `-o` (the seed's live
//! view), or `-o FILE --print` / `--json`. The rows printed are the rows
//! the file gets, rendered by deeptcp-view, the renderer `analyze` uses, so
//! a live line and its replay are the same text.
//!
//! Standard output is line-buffered (each line is written when complete,
//! also to a pipe), and the drain loop hands events over at least every
//! 100 ms, so a line appears well within 250 ms of its event. When the
//! reader goes away (`record | head`), printing stops and the recorder is
//! asked to stop like on Ctrl-C: the file, if any, is closed complete.

use std::collections::HashMap;
use std::io::{self, Stdout, Write};

use deeptcp_format::{ClockAnchor, Event};
use deeptcp_view::json::{self, EventJson};
use deeptcp_view::table::{Stacks, TableOptions, TableRenderer};

/// What is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveFormat {
    /// The classic table (`-t`, `-N` and `-K` as in the seed).
    Table { view: TableOptions, kstack: bool },
    /// JSON lines, the objects of `analyze --json`.
    Json,
}

enum Out<W: Write> {
    Table(TableRenderer<W>),
    Json(W),
}

/// Prints rows as they are recorded.
pub struct LivePrinter<W: Write = Stdout> {
    out: Out<W>,
    kstack: bool,
    stacks: Stacks,
    clock: ClockAnchor,
    host: String,
    /// The reader went away: nothing more is printed.
    closed: bool,
}

/// What a print did.
#[derive(Debug, PartialEq, Eq)]
pub enum Printed {
    Ok,
    /// The reader closed the pipe: stop recording.
    ReaderGone,
}

impl LivePrinter<Stdout> {
    pub fn stdout(format: LiveFormat, clock: ClockAnchor, host: String) -> io::Result<Self> {
        Self::new(io::stdout(), format, clock, host)
    }
}

impl<W: Write> LivePrinter<W> {
    /// Prints the table's heading lines (the seed's first line and the
    /// column headings) at once; JSON has none.
    pub fn new(out: W, format: LiveFormat, clock: ClockAnchor, host: String) -> io::Result<Self> {
        let (out, kstack) = match format {
            LiveFormat::Table { view, kstack } => {
                let mut out = out;
                writeln!(out, "Tracing TCP events. Ctrl-C to end.")?;
                let mut r = TableRenderer::new(out, view);
                r.header()?;
                (Out::Table(r), kstack)
            }
            LiveFormat::Json => (Out::Json(out), false),
        };
        Ok(LivePrinter {
            out,
            kstack,
            stacks: HashMap::new(),
            clock,
            host,
            closed: false,
        })
    }

    /// Remembers a stack, printed under the events that refer to it.
    pub fn add_stack(&mut self, id: i64, frames: &[String]) {
        if self.kstack {
            self.stacks.insert(id, frames.to_vec());
        }
    }

    /// Prints one row. An I/O error other than a closed pipe is returned.
    pub fn event(&mut self, ev: &Event) -> io::Result<Printed> {
        if self.closed {
            return Ok(Printed::ReaderGone);
        }
        let ts = self.clock.wall_ns(ev.mono_ns);
        let r = match &mut self.out {
            Out::Table(t) => t.event(ev, ts, &self.host, self.kstack.then_some(&self.stacks)),
            Out::Json(w) => json::line(w, &EventJson::new(ev, ts, &self.host)),
        };
        match r {
            Ok(()) => Ok(Printed::Ok),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(Printed::ReaderGone)
            }
            Err(e) => Err(e),
        }
    }

    /// Hands the writer back (tests).
    #[cfg(test)]
    fn into_inner(self) -> W {
        match self.out {
            Out::Table(t) => t.finish().expect("flush"),
            Out::Json(w) => w,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deeptcp_format::testing;
    use deeptcp_format::{Attribution, EventKind, TcpState};
    use deeptcp_view::table::TimeColumn;

    fn ev() -> Event {
        Event {
            mono_ns: 5_000_000_000,
            pid: 7,
            tid: 7,
            comm: "curl".into(),
            dport: 80,
            newstate: Some(TcpState::SynSent),
            netns: 1,
            stack_id: Some(3),
            probe: "inferred:inet_sock_set_state".into(),
            cookie: 9,
            attribution: Attribution::Task,
            ..testing::event(EventKind::Connect)
        }
    }

    const CLOCK: ClockAnchor = ClockAnchor {
        realtime_ns: 1_700_000_000_000_000_000,
        monotonic_ns: 0,
    };

    #[test]
    fn table_heading_rows_and_stacks() {
        let format = LiveFormat::Table {
            view: TableOptions {
                time: TimeColumn::None,
                ..TableOptions::default()
            },
            kstack: true,
        };
        let mut p = LivePrinter::new(Vec::new(), format, CLOCK, "h".into()).unwrap();
        p.add_stack(3, &["tcp_v4_connect+0x10".into()]);
        assert_eq!(p.event(&ev()).unwrap(), Printed::Ok);
        let text = String::from_utf8(p.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Tracing TCP events. Ctrl-C to end.");
        assert!(lines[1].starts_with("EVENT_SOURCE"), "{text}");
        assert!(lines[2].starts_with("tcp_connect()           7      curl "), "{text}");
        assert_eq!(lines[3], "\ttcp_v4_connect+0x10");
    }

    #[test]
    fn json_lines_have_wall_clock_times() {
        let mut p = LivePrinter::new(Vec::new(), LiveFormat::Json, CLOCK, "h".into()).unwrap();
        p.event(&ev()).unwrap();
        let text = String::from_utf8(p.into_inner()).unwrap();
        assert!(
            text.starts_with("{\"host\":\"h\",\"ts\":\"2023-11-14T22:13:25.000000000Z\""),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1);
    }

    /// A reader that went away.
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_reader_stops_printing_without_an_error() {
        let mut p = LivePrinter::new(Closed, LiveFormat::Json, CLOCK, "h".into()).unwrap();
        assert_eq!(p.event(&ev()).unwrap(), Printed::ReaderGone);
        assert_eq!(p.event(&ev()).unwrap(), Printed::ReaderGone);
        assert!(
            LivePrinter::new(
                Closed,
                LiveFormat::Table {
                    view: TableOptions::default(),
                    kstack: false
                },
                CLOCK,
                "h".into()
            )
            .is_err(),
            "the heading is written at once"
        );
    }
}
