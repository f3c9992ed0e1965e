//! The server's configuration file (`server.toml`): the settings at its top level, which are
//! the server's flags by name, and the operator's tasks under `[tasks.NAME]`.
//!
//! Owns reading the file safely (its permissions, its size) and turning every mistake into an
//! error that names the file, the line and the field. What a task's fields mean, and the rules
//! a definition must follow, are `command`'s; what a setting means is the application's, which
//! gets them as flag names and values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::command::{ArgDef, ArgField, CommandTask, DefError, Field, TaskDef};

/// Name of the configuration file in the platform config folder.
pub const CONFIG_FILE: &str = "server.toml";

/// Largest configuration file read, bytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Tasks one file may define.
pub const MAX_TASKS: usize = 1024;

/// The default configuration file: `server.toml` in the platform config folder (on Linux
/// `~/.config/client-server-communicator/server.toml`). `None` without a home folder.
pub fn default_config_path() -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "client-server-communicator")?;
    Some(dirs.config_dir().join(CONFIG_FILE))
}

/// A mistake in a configuration file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {}{message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// The line (from 1), when the mistake is at one place.
    pub line: Option<usize>,
    /// The field, e.g. `tasks.greet.args[0].pattern`.
    pub field: Option<String>,
    /// What is wrong, and how to fix it when that is clear.
    pub message: String,
}

/// One top-level setting, as the flag it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The flag's name without dashes, as written (`port`, `code-ttl`; `code_ttl` is read as
    /// `code-ttl`).
    pub key: String,
    /// Its value.
    pub value: SettingValue,
    /// Its line in the file.
    pub line: usize,
}

/// The value of a [`Setting`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    /// A switch (`no-mdns = true`).
    Switch(bool),
    /// Anything else, as it would be typed after the flag (`port = 7878` gives `7878`).
    Text(String),
}

/// A configuration file, read and checked.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its top-level settings, in file order.
    pub settings: Vec<Setting>,
    /// Its tasks, sorted by name.
    pub tasks: Vec<CommandTask>,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    tasks: BTreeMap<Spanned<String>, Spanned<RawTask>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    #[serde(default)]
    description: Option<String>,
    command: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    args: Vec<Spanned<RawArg>>,
    #[serde(default)]
    timeout: Option<Spanned<toml::Value>>,
    #[serde(default)]
    stdin: bool,
    #[serde(default)]
    clients: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    cwd: Option<Spanned<String>>,
    #[serde(default)]
    user: Option<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    concurrency: Option<Spanned<i64>>,
    #[serde(default)]
    max_output: Option<Spanned<toml::Value>>,
    #[serde(default)]
    max_stdin: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArg {
    name: Spanned<String>,
    pattern: Spanned<String>,
    #[serde(default)]
    env: Option<Spanned<String>>,
}

/// Offsets of line starts, to turn a byte offset into a line number.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self(starts)
    }

    fn line(&self, offset: usize) -> usize {
        match self.0.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// Read the configuration file at `path`. `reserved` are the names of tasks built into the
/// server (a configured task may not take one); `euid` is the server's effective uid (a task's
/// `user` needs root).
pub fn load(path: &Path, reserved: &[&str], euid: u32) -> Result<ConfigFile, ConfigError> {
    let whole = |message: String| ConfigError {
        path: path.to_path_buf(),
        line: None,
        field: None,
        message,
    };
    let text = read_checked(path).map_err(whole)?;
    parse(path, &text, reserved, euid)
}

/// Read `path` as the configuration file must be: a regular file, not larger than
/// [`MAX_CONFIG_BYTES`], that no other user can change.
fn read_checked(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    check_owner(path, &meta)?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "is {} bytes; a configuration file may hold at most {MAX_CONFIG_BYTES}",
            meta.len()
        ));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read as UTF-8 text: {e}"))?;
    Ok(text)
}

/// The file may hold secrets and decides what programs run: refuse it when someone other
/// than its owner (this user or root) could change it, or replace it in its folder.
#[cfg(unix)]
fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(format!(
            "belongs to uid {}, not to this user ({euid}) or root: it is not used",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "can be changed by other users (mode {:o}), so it is not used: run chmod go-w {}",
            meta.mode() & 0o777,
            path.display()
        ));
    }
    let folder = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    if let Some(folder) = folder
        && let Ok(dm) = std::fs::metadata(&folder)
    {
        // A folder others can write to lets them swap the file, unless it is sticky (as /tmp
        // is), where only a file's owner may remove or rename it.
        if dm.mode() & 0o022 != 0 && dm.mode() & 0o1000 == 0 {
            return Err(format!(
                "is in {}, which other users can write to, so they could replace it: run chmod go-w {}",
                folder.display(),
                folder.display()
            ));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// Check the text of a configuration file that was read from `path`.
pub fn parse(
    path: &Path,
    text: &str,
    reserved: &[&str],
    euid: u32,
) -> Result<ConfigFile, ConfigError> {
    let lines = Lines::new(text);
    let at = |span: Option<std::ops::Range<usize>>, field: Option<String>, message: String| {
        ConfigError {
            path: path.to_path_buf(),
            line: span.map(|s| lines.line(s.start)),
            field,
            message,
        }
    };
    let doc = toml::de::DeTable::parse(text)
        .map_err(|e| at(e.span(), None, e.message().trim().to_string()))?;
    let mut settings = Vec::new();
    for (key, value) in doc.get_ref().iter() {
        if key.get_ref() == "tasks" {
            if !value.get_ref().is_table() {
                return Err(at(
                    Some(key.span()),
                    Some("tasks".into()),
                    "must be a table: write each task as [tasks.NAME]".into(),
                ));
            }
            continue;
        }
        let name = key.get_ref().replace('_', "-");
        let line = lines.line(key.span().start);
        let field = Some(key.get_ref().to_string());
        if matches!(name.as_str(), "config" | "help" | "version") {
            return Err(at(
                Some(key.span()),
                field,
                format!("`--{name}` cannot be set from the configuration file"),
            ));
        }
        let v = value.get_ref();
        let value = if let Some(b) = v.as_bool() {
            SettingValue::Switch(b)
        } else if let Some(s) = v.as_str() {
            SettingValue::Text(s.to_string())
        } else if let Some(i) = v.as_integer() {
            SettingValue::Text(i.as_str().to_string())
        } else if let Some(f) = v.as_float() {
            SettingValue::Text(f.as_str().to_string())
        } else {
            return Err(at(
                Some(value.span()),
                field,
                format!(
                    "is a {}; a setting takes one value, as its flag --{name} does",
                    v.type_str()
                ),
            ));
        };
        settings.push(Setting {
            key: name,
            value,
            line,
        });
    }
    settings.sort_by_key(|s| s.line);
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        at(
            e.span(),
            None,
            e.message().trim().replace("\n", "; ").to_string(),
        )
    })?;
    if raw.tasks.len() > MAX_TASKS {
        return Err(at(
            None,
            Some("tasks".into()),
            format!("{} tasks; at most {MAX_TASKS}", raw.tasks.len()),
        ));
    }
    let mut tasks = Vec::new();
    for (name, task) in raw.tasks {
        let task_span = task.span();
        let field = |f: &str| Some(format!("tasks.{}.{f}", name.get_ref()));
        if reserved.contains(&name.get_ref().as_str()) {
            return Err(at(
                Some(name.span()),
                Some(format!("tasks.{}", name.get_ref())),
                format!(
                    "{:?} is a task built into the server; give this one another name",
                    name.get_ref()
                ),
            ));
        }
        let raw = task.into_inner();
        let timeout = match &raw.timeout {
            None => None,
            Some(v) => {
                Some(duration(v.get_ref()).map_err(|m| at(Some(v.span()), field("timeout"), m))?)
            }
        };
        let size = |v: &Option<Spanned<toml::Value>>, f: &str| match v {
            None => Ok(None),
            Some(v) => bytes(v.get_ref())
                .map(Some)
                .map_err(|m| at(Some(v.span()), field(f), m)),
        };
        let max_output = size(&raw.max_output, "max_output")?;
        let max_stdin = size(&raw.max_stdin, "max_stdin")?;
        let concurrency = match &raw.concurrency {
            None => None,
            Some(c) => Some(usize::try_from(*c.get_ref()).map_err(|_| {
                at(
                    Some(c.span()),
                    field("concurrency"),
                    "must be between 1 and 4096".into(),
                )
            })?),
        };
        let env: Vec<(&String, &Spanned<String>)> = raw.env.iter().collect();
        let def = TaskDef {
            description: raw.description.clone().unwrap_or_default(),
            command: raw
                .command
                .get_ref()
                .iter()
                .map(|s| s.get_ref().clone())
                .collect(),
            args: raw
                .args
                .iter()
                .map(|a| {
                    let a = a.get_ref();
                    ArgDef {
                        name: a.name.get_ref().clone(),
                        pattern: a.pattern.get_ref().clone(),
                        env: a.env.as_ref().map(|e| e.get_ref().clone()),
                    }
                })
                .collect(),
            timeout,
            stdin: raw.stdin,
            clients: raw
                .clients
                .as_ref()
                .map(|c| c.get_ref().iter().map(|s| s.get_ref().clone()).collect()),
            cwd: raw.cwd.as_ref().map(|c| PathBuf::from(c.get_ref())),
            user: raw.user.as_ref().map(|u| u.get_ref().clone()),
            env: env
                .iter()
                .map(|(k, v)| ((*k).clone(), v.get_ref().clone()))
                .collect(),
            concurrency,
            max_output,
            max_stdin,
        };
        let checked = CommandTask::new(name.get_ref(), def, euid).map_err(
            |DefError { field: f, message }| {
                let (span, path) = match f {
                    Field::Name => (Some(name.span()), String::new()),
                    Field::Command(None) => (Some(raw.command.span()), "command".into()),
                    Field::Command(Some(i)) => (
                        raw.command.get_ref().get(i).map(Spanned::span),
                        format!("command[{i}]"),
                    ),
                    Field::Arg(i, part) => {
                        let a = raw.args.get(i);
                        let (span, part_name) = match (a, part) {
                            (Some(a), ArgField::Name) => (Some(a.get_ref().name.span()), "name"),
                            (Some(a), ArgField::Pattern) => {
                                (Some(a.get_ref().pattern.span()), "pattern")
                            }
                            (Some(a), ArgField::Env) => (
                                a.get_ref()
                                    .env
                                    .as_ref()
                                    .map(Spanned::span)
                                    .or(Some(a.span())),
                                "env",
                            ),
                            (None, _) => (None, "name"),
                        };
                        (span, format!("args[{i}].{part_name}"))
                    }
                    Field::Clients(None) => {
                        (raw.clients.as_ref().map(Spanned::span), "clients".into())
                    }
                    Field::Clients(Some(i)) => (
                        raw.clients
                            .as_ref()
                            .and_then(|c| c.get_ref().get(i))
                            .map(Spanned::span),
                        format!("clients[{i}]"),
                    ),
                    Field::Env(i) => (
                        env.get(i).map(|(_, v)| v.span()),
                        format!("env.{}", env.get(i).map(|(k, _)| k.as_str()).unwrap_or("?")),
                    ),
                    Field::Cwd => (raw.cwd.as_ref().map(Spanned::span), "cwd".into()),
                    Field::User => (raw.user.as_ref().map(Spanned::span), "user".into()),
                    Field::Concurrency => (
                        raw.concurrency.as_ref().map(Spanned::span),
                        "concurrency".into(),
                    ),
                    Field::Timeout => (raw.timeout.as_ref().map(Spanned::span), "timeout".into()),
                };
                let full = if path.is_empty() {
                    format!("tasks.{}", name.get_ref())
                } else {
                    format!("tasks.{}.{path}", name.get_ref())
                };
                at(span.or(Some(task_span.clone())), Some(full), message)
            },
        )?;
        tasks.push(checked);
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        settings,
        tasks,
    })
}

/// A duration written as text (`"1s"`, `"10m"`, `"1h 30m"`).
fn duration(v: &toml::Value) -> Result<Duration, String> {
    let Some(text) = v.as_str() else {
        return Err(format!(
            "is a {}; write a duration as text, such as \"30s\" or \"10m\"",
            v.type_str()
        ));
    };
    let d = humantime::parse_duration(text).map_err(|e| {
        format!("{text:?} is not a duration ({e}); write one such as \"30s\" or \"10m\"")
    })?;
    if d.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(d)
}

/// A size: a number of bytes, or text with a unit (`"512KiB"`, `"100MiB"`, `"1GiB"`, `"10MB"`).
fn bytes(v: &toml::Value) -> Result<u64, String> {
    let n = match v {
        toml::Value::Integer(i) => {
            u64::try_from(*i).map_err(|_| "must not be negative".to_string())?
        }
        toml::Value::String(s) => parse_size(s)?,
        other => {
            return Err(format!(
                "is a {}; write a number of bytes, or text such as \"100MiB\"",
                other.type_str()
            ));
        }
    };
    if n == 0 {
        return Err("must be at least 1 byte".into());
    }
    Ok(n)
}

/// `"100MiB"` and friends, in bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as \"100MiB\""))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        "t" | "tb" => 1000 * 1000 * 1000 * 1000,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit; use B, KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[tasks.greet]
description = "Say hello to someone"
command = ["/bin/echo", "hello", "{who}"]
args = [{ name = "who", pattern = "^[a-z]{1,16}$" }]

[tasks.count]
description = "Count to three, slowly"
command = ["/bin/sh", "-c", "for i in 1 2 3; do echo $i; sleep 1; done"]

[tasks.slow]
command = ["/bin/sleep", "30"]
timeout = "1s"

[tasks.cat]
description = "Send back what it reads"
command = ["/bin/cat"]
stdin = true

[tasks.secret]
command = ["/bin/echo", "only for kiosk-1"]
clients = ["kiosk-1"]
"#;

    fn check(text: &str) -> Result<ConfigFile, ConfigError> {
        parse(
            Path::new("/etc/x/server.toml"),
            text,
            &["ping", "echo"],
            1000,
        )
    }

    #[test]
    fn the_issue_example_loads() {
        let c = check(EXAMPLE).unwrap();
        let names: Vec<&str> = c.tasks.iter().map(|t| t.name()).collect();
        assert_eq!(names, ["cat", "count", "greet", "secret", "slow"]);
        assert!(c.settings.is_empty());
        let slow = c.tasks.iter().find(|t| t.name() == "slow").unwrap();
        assert_eq!(slow.timeout, Some(Duration::from_secs(1)));
    }

    #[test]
    fn settings_are_flags_with_their_lines() {
        let c = check("name = \"den\"\nport = 7000\n\nno_mdns = true\n").unwrap();
        assert_eq!(
            c.settings,
            vec![
                Setting {
                    key: "name".into(),
                    value: SettingValue::Text("den".into()),
                    line: 1
                },
                Setting {
                    key: "port".into(),
                    value: SettingValue::Text("7000".into()),
                    line: 2
                },
                Setting {
                    key: "no-mdns".into(),
                    value: SettingValue::Switch(true),
                    line: 4
                },
            ]
        );
        let e = check("port = [1]\n").unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (Some(1), Some("port")));
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        let e = check("[tasks.greet]\ncommand = [\"/bin/echo\", \"{who}\"]\nargs = [{ name = \"who\", pattern = \"[a-z\" }]\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.field.as_deref(), Some("tasks.greet.args[0].pattern"));
        assert!(
            e.to_string()
                .starts_with("/etc/x/server.toml:3: tasks.greet.args[0].pattern: "),
            "{e}"
        );

        let e = check("[tasks.a]\ncommand = [\"/bin/echo\"]\ncomand = 1\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("comand"), "{e}");

        let e = check("[tasks.a]\ncommand = [\"/bin/echo\", \"{x}\"]\n").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(2), Some("tasks.a.command[1]")),
            "{e}"
        );

        let e = check("[tasks.a]\ncommand = [\"/bin/echo\"]\ntimeout = \"soon\"\n").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(3), Some("tasks.a.timeout")),
            "{e}"
        );

        let e = check("[tasks.ping]\ncommand = [\"/bin/echo\"]\n").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(1), Some("tasks.ping")),
            "{e}"
        );

        let e = check("[tasks.a]\ncommand = [\"/bin/echo\"\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");

        let e = check("[tasks.a]\ncommand = [\"/bin/echo\", \"{w}\"]\nargs = [{ name = \"w\" }]\n")
            .unwrap_err();
        assert_eq!(e.line, Some(3), "a missing pattern: {e}");
        assert!(e.message.contains("pattern"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100MiB").unwrap(), 100 << 20);
        assert_eq!(parse_size("10 MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("99999999999999 TiB").is_err());
        let c = check("[tasks.a]\ncommand = [\"/bin/cat\"]\nstdin = true\nmax_stdin = \"1KiB\"\nmax_output = 5\n").unwrap();
        assert_eq!(c.tasks[0].max_stdin, Some(1024));
        assert_eq!(c.tasks[0].max_output, Some(5));
    }

    #[test]
    fn a_file_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&path, &[], 1000).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = load(&path, &[], 1000).unwrap_err();
        assert!(e.message.contains("chmod go-w"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = load(&path, &[], 1000).unwrap_err();
        assert!(e.message.contains("replace it"), "{e}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}
