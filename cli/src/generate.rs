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

/// How `kind`'s output spells the long option `--long`.
fn spelled(kind: Generate, long: &str) -> String {
    match kind {
        // roff escapes every hyphen.
        Generate::Man => format!("\\-\\-{}", long.replace('-', "\\-")),
        Generate::CompleteFish => format!("-l {long}"),
        Generate::CompleteBash | Generate::CompleteZsh => format!("--{long}"),
    }
}

/// The visible long options of `cmd` that `text`, `kind`'s output, does not
/// mention (empty when it is complete): what each binary's tests assert of
/// its own [`render`]ed outputs.
pub fn missing_long_options(kind: Generate, text: &str, cmd: &clap::Command) -> Vec<String> {
    let mut built = cmd.clone();
    built.build();
    built
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long())
        .filter(|long| !text.contains(&spelled(kind, long)))
        .map(|long| format!("--{long}"))
        .collect()
}

/// [`missing_long_options`] of `cmd`'s own outputs, for every kind: a
/// `(kind, missing)` pair per incomplete output.
pub fn incomplete_outputs(cmd: &clap::Command) -> Vec<(Generate, Vec<String>)> {
    Generate::value_variants()
        .iter()
        .map(|&kind| {
            let text = String::from_utf8_lossy(&render(kind, cmd.clone())).into_owned();
            (kind, missing_long_options(kind, &text, cmd))
        })
        .filter(|(_, missing)| !missing.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction, Command};

    use super::*;

    fn sample() -> Command {
        Command::new("sample")
            .arg(Arg::new("output").long("output").short('o'))
            .arg(Arg::new("dry-run").long("dry-run").action(ArgAction::SetTrue))
            .arg(Arg::new("secret").long("secret").hide(true))
    }

    #[test]
    fn every_output_mentions_every_visible_long_option() {
        assert_eq!(incomplete_outputs(&sample()), vec![]);
        for &kind in Generate::value_variants() {
            let text = String::from_utf8(render(kind, sample())).unwrap();
            assert!(
                text.contains("sample") && text.contains(&spelled(kind, "dry-run")),
                "{kind:?}: {text}"
            );
        }
        let man = String::from_utf8(render(Generate::Man, sample())).unwrap();
        assert!(man.contains(".TH sample 1"), "{man}");
        assert!(!man.contains("secret"), "hidden options stay out of the man page");
    }

    #[test]
    fn an_option_the_output_lacks_is_reported() {
        // Outputs of an older definition, checked against the current one.
        let old = Command::new("sample").arg(Arg::new("output").long("output"));
        for &kind in Generate::value_variants() {
            let text = String::from_utf8(render(kind, old.clone())).unwrap();
            assert_eq!(missing_long_options(kind, &text, &sample()), ["--dry-run"], "{kind:?}");
        }
    }
}
