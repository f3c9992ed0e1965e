//! The configuration file's settings as flags. Each top-level key of the file is a flag of
//! the server by name (`port = 7000` is `--port 7000`, `no-mdns = true` is `--no-mdns`), and
//! is checked as that flag would be; the server then runs with the file's settings first and
//! the real command line after, so a flag typed on the command line wins over the file, and
//! the file wins over the defaults. A flag's environment variable (`CSC_SERVER_STATE_DIR`)
//! also wins over the file.
//!
//! Owns which file is read (the one `--config` names, else the default one when it exists) and
//! what a setting may be. What the file's tasks mean, and reading the file safely, are the
//! engine's (`csc_shared::server::tasks::config`).

use std::ffi::OsString;
use std::path::Path;

use clap::{CommandFactory, FromArgMatches};
use csc_shared::server::tasks::config::{self, ConfigError, ConfigFile, Setting, SettingValue};

use crate::cli::Cli;
use crate::{Failure, exit};

/// Flags that are not settings: they choose the file, or do not run the server.
const NOT_SETTINGS: &[&str] = &["config", "help", "version"];

/// The command line the server runs with, and its configuration file when there is one.
/// `args` is the whole command line (program name first) that `cli` was parsed from;
/// `reserved` the names of the tasks built into the server. A subcommand reads no file.
pub fn resolve(
    cli: Cli,
    args: &[OsString],
    reserved: &[&str],
    euid: u32,
) -> Result<(Cli, Option<ConfigFile>), Failure> {
    if cli.command.is_some() {
        return Ok((cli, None));
    }
    // An explicit file must be there; the default one only when it exists.
    let path = match &cli.config {
        Some(p) => p.clone(),
        None => match config::default_config_path().filter(|p| p.exists()) {
            Some(p) => p,
            None => return Ok((cli, None)),
        },
    };
    let failure = |e: ConfigError| Failure::new(exit::CONFIG, e.to_string());
    let file = config::load(&path, reserved, euid).map_err(failure)?;
    let flags = flags(&file.path, &file.settings).map_err(failure)?;
    let mut merged: Vec<OsString> = Vec::with_capacity(args.len() + flags.len());
    merged.extend(args.first().cloned());
    merged.extend(flags.into_iter().map(OsString::from));
    merged.extend(args.iter().skip(1).cloned());
    let cli = Cli::command()
        .args_override_self(true)
        .try_get_matches_from(merged)
        .and_then(|m| Cli::from_arg_matches(&m))
        .map_err(|e| {
            failure(ConfigError {
                path: file.path.clone(),
                line: None,
                field: None,
                message: clap_message(&e),
            })
        })?;
    Ok((cli, Some(file)))
}

/// The flags that `settings` of the file at `path` stand for, each checked as its flag.
pub fn flags(path: &Path, settings: &[Setting]) -> Result<Vec<String>, ConfigError> {
    let command = Cli::command();
    let mut flags = Vec::new();
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for s in settings {
        let error = |message: String| ConfigError {
            path: path.to_path_buf(),
            line: Some(s.line),
            field: Some(s.key.clone()),
            message,
        };
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(s.key.as_str()))
            .filter(|_| !NOT_SETTINGS.contains(&s.key.as_str()))
            .ok_or_else(|| {
                error("no such setting; the settings are the flags of server-tui --help".into())
            })?;
        if let Some((_, line)) = seen.iter().find(|(k, _)| *k == s.key) {
            return Err(error(format!("is set twice (also on line {line})")));
        }
        seen.push((&s.key, s.line));
        if arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|v| !v.is_empty())
        {
            // The environment wins over the file, as it wins over a default.
            continue;
        }
        let takes_value = arg.get_action().takes_values();
        let flag = match (&s.value, takes_value) {
            (SettingValue::Switch(true), false) => Some(format!("--{}", s.key)),
            (SettingValue::Switch(false), false) => None,
            (SettingValue::Switch(_), true) => {
                return Err(error(format!(
                    "takes a value, as --{} does; write it as {} = \"...\"",
                    s.key, s.key
                )));
            }
            (SettingValue::Text(_), false) => {
                return Err(error(format!(
                    "is a switch: write {} = true (or false)",
                    s.key
                )));
            }
            // `--flag=value`: a value that starts with a dash stays a value.
            (SettingValue::Text(v), true) => Some(format!("--{}={v}", s.key)),
        };
        if let Some(flag) = flag {
            Cli::command()
                .no_binary_name(true)
                .try_get_matches_from([flag.as_str()])
                .map_err(|e| error(clap_message(&e)))?;
            flags.push(flag);
        }
    }
    Ok(flags)
}

/// The first line of clap's error, without its `error: ` prefix or the usage after it.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn setting(key: &str, value: SettingValue, line: usize) -> Setting {
        Setting {
            key: key.into(),
            value,
            line,
        }
    }

    fn text(key: &str, v: &str, line: usize) -> Setting {
        setting(key, SettingValue::Text(v.into()), line)
    }

    fn path() -> PathBuf {
        PathBuf::from("/etc/csc/server.toml")
    }

    #[test]
    fn settings_become_flags() {
        let got = flags(
            &path(),
            &[
                text("port", "7000", 1),
                text("name", "-den-", 2),
                setting("no-mdns", SettingValue::Switch(true), 3),
                setting("no-color", SettingValue::Switch(false), 4),
                text("code-ttl", "30s", 5),
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            ["--port=7000", "--name=-den-", "--no-mdns", "--code-ttl=30s"]
        );
    }

    #[test]
    fn mistakes_name_the_file_the_line_and_the_key() {
        let e = flags(&path(), &[text("port", "7000", 1), text("prot", "1", 2)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/csc/server.toml:2: prot: no such setting; the settings are the flags of server-tui --help"
        );
        let e = flags(&path(), &[text("max-attempts", "0", 3)]).unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with("/etc/csc/server.toml:3: max-attempts: invalid value '0'"),
            "{s}"
        );
        assert!(!s.contains("Usage"), "one line: {s}");
        let e = flags(&path(), &[text("code-ttl", "soon", 7)]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/csc/server.toml:7: code-ttl: ")
        );
        let e = flags(&path(), &[setting("port", SettingValue::Switch(true), 1)]).unwrap_err();
        assert!(e.to_string().contains("takes a value"), "{e}");
        let e = flags(&path(), &[text("no-mdns", "yes", 4)]).unwrap_err();
        assert!(e.to_string().contains("is a switch"), "{e}");
        let e = flags(&path(), &[text("port", "1", 1), text("port", "2", 5)]).unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (Some(5), "is set twice (also on line 1)")
        );
        // Subcommands' flags and the flags that are no settings.
        for key in ["for", "config", "help", "version", "clients"] {
            let e = flags(&path(), &[text(key, "1", 1)]).unwrap_err();
            assert!(e.message.contains("no such setting"), "{key}: {e}");
        }
    }

    fn resolve_with(file_text: &str, args: &[&str]) -> Result<(Cli, Option<ConfigFile>), Failure> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, file_text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut argv: Vec<OsString> = vec!["server-tui".into(), "--config".into(), path.into()];
        argv.extend(args.iter().map(OsString::from));
        let cli = Cli::try_parse_from(&argv).unwrap();
        resolve(
            cli,
            &argv,
            &["ping", "echo"],
            csc_shared::server::effective_uid(),
        )
    }

    use clap::Parser;

    #[test]
    fn the_command_line_wins_over_the_file_and_the_file_over_the_defaults() {
        let file = "name = \"den\"\nport = 7000\nno_mdns = true\nmax_attempts = 9\n";
        let (cli, config) = resolve_with(file, &[]).unwrap();
        assert_eq!(cli.name.as_deref(), Some("den"));
        assert_eq!(cli.port, 7000);
        assert!(cli.no_mdns);
        assert_eq!(cli.max_attempts, 9);
        assert!(config.unwrap().tasks.is_empty());
        let (cli, _) = resolve_with(file, &["--name", "attic", "--port", "0"]).unwrap();
        assert_eq!(cli.name.as_deref(), Some("attic"));
        assert_eq!(cli.port, 0);
        assert_eq!(cli.max_attempts, 9, "the rest still comes from the file");
        let (cli, _) = resolve_with("", &[]).unwrap();
        assert_eq!(cli.port, csc_shared::DEFAULT_PORT);
        assert_eq!(cli.max_attempts, 5);
    }

    #[test]
    fn a_bad_file_is_a_config_failure() {
        let f = resolve_with("port = \"many\"\n", &[]).unwrap_err();
        assert_eq!(f.code, exit::CONFIG);
        assert!(f.message.contains("server.toml:1: port: "), "{}", f.message);
        let f = resolve_with("[tasks.ping]\ncommand = [\"/bin/echo\"]\n", &[]).unwrap_err();
        assert_eq!(f.code, exit::CONFIG);
        assert!(
            f.message.contains("server.toml:1: tasks.ping: "),
            "{}",
            f.message
        );
    }

    #[test]
    fn subcommands_read_no_file() {
        let argv: Vec<OsString> = ["server-tui", "--config", "/nonexistent/x.toml", "runs"]
            .iter()
            .map(OsString::from)
            .collect();
        let cli = Cli::try_parse_from(&argv).unwrap();
        let (cli, file) = resolve(cli, &argv, &[], 0).unwrap();
        assert!(file.is_none() && cli.command.is_some());
    }

    #[test]
    fn the_example_configuration_loads_cleanly() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../assets/server.toml"
        ));
        let text = std::fs::read_to_string(path).unwrap();
        let reserved = crate::server_tasks();
        let file = config::parse(path, &text, &reserved.names(), 1000).unwrap();
        let names: Vec<&str> = file.tasks.iter().map(|t| t.name()).collect();
        assert_eq!(names, ["cat", "count", "greet", "secret", "slow"]);
        assert!(file.settings.is_empty(), "its settings are commented out");
        // Each commented-out setting is a real one.
        let commented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                ["name ", "port ", "bind ", "no-mdns ", "code-ttl "]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .map(|l| format!("{}\n", l.split('#').next().unwrap()))
            .collect();
        let settings = config::parse(path, &commented, &[], 1000).unwrap().settings;
        assert_eq!(settings.len(), 5, "{commented}");
        flags(path, &settings).unwrap();
    }
}
