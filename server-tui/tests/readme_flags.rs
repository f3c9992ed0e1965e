//! Every long option of `server-tui`, of every subcommand, is named in README.md.

use clap::CommandFactory;

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));

/// `--flag` of `cmd` and of its subcommands, with the command path they belong to.
fn long_flags(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long()
            && !matches!(long, "help" | "version")
        {
            out.push((path.to_string(), format!("--{long}")));
        }
    }
    for sub in cmd.get_subcommands() {
        long_flags(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_long_flag_is_in_the_readme() {
    let mut flags = Vec::new();
    long_flags(&server_tui::cli::Cli::command(), "server-tui", &mut flags);
    assert!(flags.len() > 5, "{flags:?}");
    let missing: Vec<String> = flags
        .iter()
        .filter(|(_, flag)| {
            // Named as itself: not as the start of a longer flag (--pairing in --pairing-budget).
            !README.match_indices(flag.as_str()).any(|(at, _)| {
                let next = README[at + flag.len()..].chars().next();
                !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-')
            })
        })
        .map(|(path, flag)| format!("{path} {flag}"))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not mention: {missing:?}"
    );
}
