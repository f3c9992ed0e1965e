//! Every long option of `client-tui`, of every subcommand, is named in README.md.

use clap::CommandFactory;

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));

#[test]
fn every_long_flag_is_in_the_readme() {
    let flags = tui_kit::docs::long_flags(&client_tui::cli::Cli::command());
    assert!(flags.len() > 5, "{flags:?}");
    let missing = tui_kit::docs::unmentioned(&flags, README);
    assert!(
        missing.is_empty(),
        "README.md does not mention: {missing:?}"
    );
}
