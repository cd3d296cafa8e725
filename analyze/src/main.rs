//! `analyze`: replays deeptcp recordings offline, without root or eBPF.
//!
//! This file only parses the command line and dispatches to [`app::run`]
//! (or, for the hidden `--generate`, to [`deeptcp_cli::generate::print`]);
//! it owns the process-level policy: stdout is locked and buffered, errors
//! are printed once as `analyze: <message: cause: …>` (anyhow's `{:#}`
//! chain, see [`app::error_line`]) with exit status 1,
//! usage errors keep clap's status 2, and a closed output pipe
//! (`analyze big.parquet | head`) ends the run quietly with status 0.

mod app;
mod cli;
mod conn;
mod follow;
mod inputs;
mod names;
mod order;
mod owner;
mod render;
mod report;
mod source;
mod stats;
mod version;
mod wallclock;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use app::OutputError;
use clap::{CommandFactory, Parser};
use cli::{Args, Config};

fn main() -> ExitCode {
    // clap's usage message and status 2 (0 for --help/--version) when the
    // arguments are not usable.
    let args = Args::parse();
    if let Some(kind) = args.generate {
        return match deeptcp_cli::generate::print(kind, Args::command()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let _ = writeln!(io::stderr(), "analyze: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let config = Config::from_args(args).unwrap_or_else(|e| e.exit());

    let mut out = BufWriter::new(io::stdout().lock());
    let result = app::run(&config, &mut out, &mut io::stderr())
        .and_then(|()| out.flush().map_err(|e| anyhow::Error::new(OutputError(e))));

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if OutputError::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Let what was printed before the error reach its reader first.
            let _ = out.flush();
            let _ = writeln!(io::stderr(), "analyze: {}", app::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
