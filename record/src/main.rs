//! `record`: loads deeptcp's eBPF programs and writes TCP events to Parquet.
//! `main` only parses arguments and dispatches; see `session` for the work.
//! Exit status: 0 when done, 1 on any error (one line on stderr), 2 for bad
//! usage (clap's own errors and those of `cli::Command::from_cli`).

/// `eprintln!` that never panics: stderr may be a pipe whose reader left
/// (`record 2>&1 | head`), and a diagnostic must not end a recording
/// before its file is closed.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod btf;
mod bytes;
mod cli;
mod hive;
mod host;
mod live;
mod misses;
mod names;
mod offsets;
mod privileges;
mod probes;
mod requirements;
mod session;
mod snapshot;
mod stack_budget;
mod startup;
mod symbolize;
mod version;

use clap::{CommandFactory, Parser};

fn main() {
    let cli = cli::Cli::parse();
    let result = match cli.generate {
        // Before any validation: needs no -o, no root.
        Some(kind) => deeptcp_cli::generate::print(kind, cli::Cli::command()),
        // Bad usage: clap's message and status 2, like its own parse errors.
        None => match cli::Command::from_cli(cli).unwrap_or_else(|e| e.exit()) {
            cli::Command::Record(cfg) => session::run(*cfg),
            cli::Command::ListProbes { disabled, owner_store } => session::list_probes(&disabled, owner_store),
        },
    };
    if let Err(e) = result {
        // Live output whose reader left before the first line (`record |
        // true`): nothing was lost that anyone wanted, like a closed pipe later.
        let broken_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if broken_pipe {
            std::process::exit(0);
        }
        say!("record: {e:#}");
        std::process::exit(1);
    }
}
