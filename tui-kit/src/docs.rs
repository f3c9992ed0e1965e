//! What an app prints about its own command line, generated from its clap definition: shell
//! completions, the manual page, and (for the apps' README tests) every long option it has.
//!
//! Owns the generation and the writing to stdout; each app names the subcommands.

use std::io::Write;

pub use clap_complete::Shell;

/// What to print.
#[derive(Debug, Clone, Copy)]
pub enum Doc {
    /// A completion script for this shell.
    Completions(Shell),
    /// The manual page (roff).
    Man,
}

/// Print `doc` for `command` (the program `name`) on stdout. A reader that stops early
/// (`| head`) is not an error; any other failure is returned in words.
pub fn print(doc: Doc, mut command: clap::Command, name: &str) -> Result<(), String> {
    // Into memory first: clap_complete panics on a write error, and `| head` is one.
    let mut text = Vec::new();
    match doc {
        Doc::Completions(shell) => clap_complete::generate(shell, &mut command, name, &mut text),
        Doc::Man => clap_mangen::Man::new(command)
            .render(&mut text)
            .map_err(|e| format!("cannot render the manual: {e}"))?,
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(&text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
        Ok(()) => Ok(()),
    }
}

/// Every `--flag` of `command` and of its subcommands (`--help` and `--version` left out),
/// each with the command path it belongs to (`client-tui pair`).
pub fn long_flags(command: &clap::Command) -> Vec<(String, String)> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long()
                && !matches!(long, "help" | "version")
            {
                out.push((path.to_string(), format!("--{long}")));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut out = Vec::new();
    walk(command, command.get_name(), &mut out);
    out
}

/// The entries of `flags` that `text` never names as themselves (`--pairing` inside
/// `--pairing-budget` does not count), as `path --flag`.
pub fn unmentioned(flags: &[(String, String)], text: &str) -> Vec<String> {
    flags
        .iter()
        .filter(|(_, flag)| {
            !text.match_indices(flag.as_str()).any(|(at, _)| {
                let next = text[at + flag.len()..].chars().next();
                !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-')
            })
        })
        .map(|(path, flag)| format!("{path} {flag}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_counts_only_when_named_as_itself() {
        let flags = vec![
            ("app".to_string(), "--pairing".to_string()),
            ("app".to_string(), "--port".to_string()),
        ];
        assert_eq!(
            unmentioned(&flags, "use --pairing-budget and --port"),
            vec!["app --pairing".to_string()]
        );
        assert!(unmentioned(&flags, "--pairing, --port.").is_empty());
    }
}
