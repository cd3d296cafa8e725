//! `--generate KIND` (hidden): prints the man page (clap_mangen) or a shell
//! completion script (clap_complete) built from the real command definition,
//! so they cannot drift from it. `scripts/install` and packagers use it.

use std::io::Write;

use clap::ValueEnum;
use clap_complete::Shell;

/// What `--generate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    /// The man page (roff, section 1).
    Man,
    /// Bash completion script.
    CompleteBash,
    /// Zsh completion script.
    CompleteZsh,
    /// Fish completion script.
    CompleteFish,
}

/// The man page or completion script for `cmd`.
pub fn render(kind: Generate, mut cmd: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    let shell = match kind {
        Generate::Man => {
            // Writing into a Vec cannot fail.
            let _ = clap_mangen::Man::new(cmd).render(&mut out);
            return out;
        }
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
    };
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// Writes [`render`]'s output to stdout. A reader that went away early
/// (`--generate man | head`) is not an error.
pub fn print(kind: Generate, cmd: clap::Command) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&render(kind, cmd)).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => Ok(result?),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// How `kind`'s output spells the long option `--long`.
    fn spelled(kind: Generate, long: &str) -> String {
        match kind {
            // roff escapes every hyphen.
            Generate::Man => format!("\\-\\-{}", long.replace('-', "\\-")),
            Generate::CompleteFish => format!("-l {long}"),
            Generate::CompleteBash | Generate::CompleteZsh => format!("--{long}"),
        }
    }

    #[test]
    fn every_output_mentions_every_visible_long_option() {
        let mut cmd = crate::cli::Args::command();
        cmd.build();
        let longs: Vec<&str> = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long())
            .collect();
        assert!(longs.contains(&"conn") && longs.contains(&"help"), "{longs:?}");
        assert!(!longs.contains(&"generate"), "--generate is hidden");
        for &kind in Generate::value_variants() {
            let text = String::from_utf8(render(kind, crate::cli::Args::command())).unwrap();
            for long in &longs {
                let want = spelled(kind, long);
                assert!(text.contains(&want), "{kind:?} lacks {want}");
            }
        }
    }
}
