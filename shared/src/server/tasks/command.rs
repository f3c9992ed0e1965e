//! A task the operator configured: a program and its argument template, checked once when the
//! configuration is loaded, and the client's values checked again before every run.
//!
//! Owns the rules that keep a client's values in their place: a placeholder is a whole argv
//! element, every value must match its declared pattern in full, no value ever passes through
//! a shell, and the program gets a clean environment. Reading the file is `config`'s, and
//! starting and stopping the program is `process`'s.

use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use super::access::{self, Access, ClientEntry};
use crate::identity::PeerId;
use crate::message::{ArgInfo, TaskInfo};

/// The `PATH` every configured program gets (a task's `env` may set another).
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Longest value a client may pass for one argument, bytes: the most Linux takes in one argv
/// element or environment string (128 KiB with its NUL).
pub const MAX_ARG_BYTES: usize = 128 * 1024 - 1;

/// Runs of one task at once, unless its `concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Environment variables the server sets itself; a task cannot set them.
const RESERVED_ENV: [&str; 2] = ["CSC_CLIENT_ID", "CSC_CLIENT_NAME"];

/// A task's definition as written, before checking.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskDef {
    pub(crate) description: String,
    pub(crate) command: Vec<String>,
    pub(crate) args: Vec<ArgDef>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) stdin: bool,
    pub(crate) clients: Option<Vec<String>>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) user: Option<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) concurrency: Option<usize>,
    pub(crate) max_output: Option<u64>,
    pub(crate) max_stdin: Option<u64>,
}

/// One declared argument as written.
#[derive(Debug, Clone, Default)]
pub(crate) struct ArgDef {
    pub(crate) name: String,
    pub(crate) pattern: String,
    pub(crate) env: Option<String>,
}

/// Which part of a definition an error is about, so the file's reader can give its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Field {
    /// The task's name (its table header).
    Name,
    /// `command`, or its element `n`.
    Command(Option<usize>),
    /// `args[n].name`, `.pattern` or `.env`.
    Arg(usize, ArgField),
    /// `clients[n]`.
    Clients(Option<usize>),
    /// `env.KEY`.
    Env(usize),
    /// `cwd`.
    Cwd,
    /// `user`.
    User,
    /// `concurrency`.
    Concurrency,
    /// `timeout`.
    Timeout,
}

/// A part of a declared argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgField {
    Name,
    Pattern,
    Env,
}

/// A definition that cannot be used: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DefError {
    pub(crate) field: Field,
    pub(crate) message: String,
}

fn err<T>(field: Field, message: impl Into<String>) -> Result<T, DefError> {
    Err(DefError {
        field,
        message: message.into(),
    })
}

/// A declared argument, checked.
#[derive(Debug, Clone)]
struct ArgSpec {
    name: String,
    /// As the operator wrote it (what clients see).
    pattern: String,
    /// Matches the whole value: `^(?:pattern)$`.
    regex: Regex,
    env: Option<String>,
}

/// One element of the program's argv after `command[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Element {
    Literal(String),
    /// The value of declared argument `n`.
    Arg(usize),
}

/// The account a task runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// A configured task, checked and ready to run.
#[derive(Debug, Clone)]
pub struct CommandTask {
    name: String,
    description: String,
    pub(crate) program: PathBuf,
    template: Vec<Element>,
    args: Vec<ArgSpec>,
    pub(crate) stdin: bool,
    clients: Option<Vec<ClientEntry>>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) user: Option<RunAs>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) concurrency: usize,
    pub(crate) max_output: Option<u64>,
    pub(crate) max_stdin: Option<u64>,
}

/// What a run of a command task gets from the client's values: the argv after the program,
/// and the variables set from arguments declared with `env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prepared {
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `{name}` when `element` is exactly a placeholder.
fn placeholder(element: &str) -> Option<&str> {
    let inner = element.strip_prefix('{')?.strip_suffix('}')?;
    is_ident(inner).then_some(inner)
}

/// Compile `pattern` so that it must match a whole value.
pub(crate) fn anchored(pattern: &str) -> Result<Regex, String> {
    let build = |p: &str| {
        regex::RegexBuilder::new(p)
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .build()
    };
    // On its own first: an unbalanced pattern such as `a)|(.*` must not escape the anchors.
    build(pattern).map_err(|e| e.to_string())?;
    build(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())
}

/// The uid and gid of `user` from the password database.
#[cfg(unix)]
fn lookup_user(user: &str) -> Result<(u32, u32), String> {
    let name = std::ffi::CString::new(user).map_err(|_| "contains a NUL character".to_string())?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: `pwd` and `buf` outlive the call, and `buf.len()` is the buffer's real size.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot read the user database: {}",
            std::io::Error::from_raw_os_error(rc)
        ));
    }
    if found.is_null() {
        return Err(format!("no such user {user:?}"));
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

#[cfg(not(unix))]
fn lookup_user(_user: &str) -> Result<(u32, u32), String> {
    Err("`user` is supported on Unix only".into())
}

impl CommandTask {
    /// Check `def` as task `name`. `euid` is the server's effective uid (`user` needs root).
    pub(crate) fn new(name: &str, def: TaskDef, euid: u32) -> Result<Self, DefError> {
        if !is_ident(name) || name.len() > 64 {
            return err(
                Field::Name,
                format!(
                    "task name {name:?}: use letters, digits, `_` and `-` (up to 64), starting with a letter"
                ),
            );
        }
        // Arguments first: the template refers to them.
        let mut args: Vec<ArgSpec> = Vec::new();
        for (i, a) in def.args.iter().enumerate() {
            if !is_ident(&a.name) {
                return err(
                    Field::Arg(i, ArgField::Name),
                    format!(
                        "argument name {:?}: use letters, digits, `_` and `-`, starting with a letter",
                        a.name
                    ),
                );
            }
            if args.iter().any(|b| b.name == a.name) {
                return err(
                    Field::Arg(i, ArgField::Name),
                    format!("argument {:?} is declared twice", a.name),
                );
            }
            let regex = anchored(&a.pattern).map_err(|e| DefError {
                field: Field::Arg(i, ArgField::Pattern),
                message: format!(
                    "pattern of {:?} is not a valid regular expression: {e}",
                    a.name
                ),
            })?;
            if let Some(var) = &a.env {
                if !is_env_name(var) {
                    return err(
                        Field::Arg(i, ArgField::Env),
                        format!("{var:?} is not a valid environment variable name"),
                    );
                }
                let dangerous = var == "PATH"
                    || var.starts_with("LD_")
                    || var.starts_with("DYLD_")
                    || RESERVED_ENV.contains(&var.as_str());
                if dangerous {
                    return err(
                        Field::Arg(i, ArgField::Env),
                        format!(
                            "a client's value cannot go to {var}: the server sets it, or it changes which code runs"
                        ),
                    );
                }
                if args.iter().any(|b| b.env.as_deref() == Some(var)) {
                    return err(
                        Field::Arg(i, ArgField::Env),
                        format!("{var} is the variable of two arguments"),
                    );
                }
                if def.env.iter().any(|(k, _)| k == var) {
                    return err(
                        Field::Arg(i, ArgField::Env),
                        format!("{var} is also set in the task's `env`"),
                    );
                }
            }
            args.push(ArgSpec {
                name: a.name.clone(),
                pattern: a.pattern.clone(),
                regex,
                env: a.env.clone(),
            });
        }

        let Some(program) = def.command.first() else {
            return err(
                Field::Command(None),
                "is empty: give the program as an absolute path, then its arguments",
            );
        };
        if placeholder(program).is_some() || !program.starts_with('/') {
            return err(
                Field::Command(Some(0)),
                format!(
                    "the program {program:?} must be an absolute path (there is no shell and no PATH lookup)"
                ),
            );
        }
        if program.contains('\0') {
            return err(Field::Command(Some(0)), "contains a NUL character");
        }
        match std::fs::metadata(program) {
            Ok(m) if m.is_file() => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    if m.permissions().mode() & 0o111 == 0 {
                        return err(
                            Field::Command(Some(0)),
                            format!("{program} is not executable"),
                        );
                    }
                }
            }
            Ok(_) => return err(Field::Command(Some(0)), format!("{program} is not a file")),
            Err(e) => return err(Field::Command(Some(0)), format!("{program}: {e}")),
        }
        let mut template = Vec::new();
        let mut used = vec![false; args.len()];
        for (i, element) in def.command.iter().enumerate().skip(1) {
            if element.contains('\0') {
                return err(Field::Command(Some(i)), "contains a NUL character");
            }
            if let Some(name) = placeholder(element) {
                let Some(n) = args.iter().position(|a| a.name == name) else {
                    return err(
                        Field::Command(Some(i)),
                        format!(
                            "placeholder {{{name}}} is not declared: add {{ name = \"{name}\", pattern = \"...\" }} to args"
                        ),
                    );
                };
                if let Some(var) = &args[n].env {
                    return err(
                        Field::Command(Some(i)),
                        format!("argument {name:?} goes to the environment ({var}), not to argv"),
                    );
                }
                used[n] = true;
                template.push(Element::Arg(n));
                continue;
            }
            // `--user={who}` would splice a value into a literal: not allowed, so that
            // every value is one whole element.
            if let Some(a) = args
                .iter()
                .find(|a| a.env.is_none() && element.contains(&format!("{{{}}}", a.name)))
            {
                return err(
                    Field::Command(Some(i)),
                    format!(
                        "{element:?}: a placeholder must be a whole element; write {{{}}} as an element of its own",
                        a.name
                    ),
                );
            }
            template.push(Element::Literal(element.clone()));
        }
        if let Some(n) = (0..args.len()).find(|n| !used[*n] && args[*n].env.is_none()) {
            return err(
                Field::Arg(n, ArgField::Name),
                format!(
                    "argument {:?} is declared but not used: put {{{}}} in command, or give it env = \"VAR\"",
                    args[n].name, args[n].name
                ),
            );
        }

        let clients = match &def.clients {
            None => None,
            Some(list) if list.is_empty() => {
                return err(
                    Field::Clients(None),
                    "is empty, so no client could run the task: list clients, or leave it out to allow every paired client",
                );
            }
            Some(list) => {
                let mut entries = Vec::new();
                for (i, text) in list.iter().enumerate() {
                    entries.push(ClientEntry::parse(text).map_err(|m| DefError {
                        field: Field::Clients(Some(i)),
                        message: m,
                    })?);
                }
                Some(entries)
            }
        };
        for (i, (key, value)) in def.env.iter().enumerate() {
            if !is_env_name(key) {
                return err(
                    Field::Env(i),
                    format!("{key:?} is not a valid environment variable name"),
                );
            }
            if RESERVED_ENV.contains(&key.as_str()) {
                return err(Field::Env(i), format!("{key} is set by the server"));
            }
            if value.contains('\0') {
                return err(Field::Env(i), "contains a NUL character");
            }
        }
        if let Some(cwd) = &def.cwd {
            if !cwd.is_absolute() {
                return err(
                    Field::Cwd,
                    format!("{} must be an absolute path", cwd.display()),
                );
            }
            if !cwd.is_dir() {
                return err(Field::Cwd, format!("{} is not a folder", cwd.display()));
            }
        }
        let user = match &def.user {
            None => None,
            Some(u) => {
                if euid != 0 {
                    return err(
                        Field::User,
                        format!("running as {u:?} needs the server to run as root"),
                    );
                }
                let (uid, gid) = lookup_user(u).map_err(|m| DefError {
                    field: Field::User,
                    message: m,
                })?;
                Some(RunAs {
                    name: u.clone(),
                    uid,
                    gid,
                })
            }
        };
        let concurrency = def.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=4096).contains(&concurrency) {
            return err(Field::Concurrency, "must be between 1 and 4096");
        }
        if def.timeout == Some(Duration::ZERO) {
            return err(Field::Timeout, "must be longer than 0");
        }
        Ok(Self {
            name: name.to_string(),
            description: def.description,
            program: PathBuf::from(program),
            template,
            args,
            stdin: def.stdin,
            clients,
            cwd: def.cwd,
            user,
            env: def.env,
            timeout: def.timeout,
            concurrency,
            max_output: def.max_output,
            max_stdin: def.max_stdin,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The task as clients see it: never the command.
    pub fn info(&self) -> TaskInfo {
        TaskInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            args: self
                .args
                .iter()
                .map(|a| ArgInfo {
                    name: a.name.clone(),
                    pattern: a.pattern.clone(),
                })
                .collect(),
            stdin: self.stdin,
            builtin: false,
        }
    }

    /// Whether client `id`, registered as `name`, may run it.
    pub(crate) fn access(
        &self,
        id: &PeerId,
        name: &str,
        paired: impl Fn() -> Vec<(PeerId, String)>,
    ) -> Access {
        access::check(self.clients.as_deref(), id, name, paired)
    }

    /// `clients` entries that match more than one of `paired`.
    pub(crate) fn ambiguous(&self, paired: &[(PeerId, String)]) -> Vec<(String, usize)> {
        self.clients
            .as_deref()
            .map(|c| access::ambiguous(c, paired))
            .unwrap_or_default()
    }

    fn arity(&self) -> String {
        let names: Vec<&str> = self.args.iter().map(|a| a.name.as_str()).collect();
        match names.len() {
            0 => format!("{} takes no arguments", self.name),
            1 => format!("{} takes 1 argument ({})", self.name, names[0]),
            n => format!("{} takes {n} arguments ({})", self.name, names.join(", ")),
        }
    }

    /// Check the client's positional `values` against the declared arguments, and place them.
    /// The error says which argument failed and why, never echoing the value.
    pub(crate) fn prepare(&self, values: &[String]) -> Result<Prepared, String> {
        if values.len() > self.args.len() {
            return Err(format!(
                "too many arguments: {}, got {}",
                self.arity(),
                values.len()
            ));
        }
        for (i, spec) in self.args.iter().enumerate() {
            let n = i + 1;
            let Some(value) = values.get(i) else {
                return Err(format!(
                    "missing argument {n} ({}): {}",
                    spec.name,
                    self.arity()
                ));
            };
            if value.len() > MAX_ARG_BYTES {
                return Err(format!(
                    "argument {n} ({}) is longer than {MAX_ARG_BYTES} bytes",
                    spec.name
                ));
            }
            if value.contains('\0') {
                return Err(format!(
                    "argument {n} ({}) contains a NUL character",
                    spec.name
                ));
            }
            if !spec.regex.is_match(value) {
                return Err(format!(
                    "argument {n} ({}) does not match {}",
                    spec.name, spec.pattern
                ));
            }
        }
        let argv = self
            .template
            .iter()
            .map(|e| match e {
                Element::Literal(s) => s.clone(),
                Element::Arg(n) => values[*n].clone(),
            })
            .collect();
        let env = self
            .args
            .iter()
            .zip(values)
            .filter_map(|(spec, v)| spec.env.as_ref().map(|var| (var.clone(), v.clone())))
            .collect();
        Ok(Prepared { argv, env })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(command: &[&str], args: &[(&str, &str, Option<&str>)]) -> TaskDef {
        TaskDef {
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args
                .iter()
                .map(|(n, p, e)| ArgDef {
                    name: n.to_string(),
                    pattern: p.to_string(),
                    env: e.map(str::to_string),
                })
                .collect(),
            ..TaskDef::default()
        }
    }

    fn field(r: Result<CommandTask, DefError>) -> Field {
        r.unwrap_err().field
    }

    #[test]
    fn values_fill_declared_arguments_in_order_as_whole_elements() {
        let t = CommandTask::new(
            "greet",
            def(
                &["/bin/echo", "hello", "{who}", "--", "{n}"],
                &[
                    ("who", "^[a-z]{1,16}$", None),
                    ("n", "[0-9]+", None),
                    ("mood", "happy|sad", Some("MOOD")),
                ],
            ),
            1000,
        )
        .unwrap();
        let p = t
            .prepare(&["ada".into(), "42".into(), "sad".into()])
            .unwrap();
        assert_eq!(p.argv, vec!["hello", "ada", "--", "42"]);
        assert_eq!(p.env, vec![("MOOD".to_string(), "sad".to_string())]);
    }

    #[test]
    fn bad_values_are_refused_naming_the_argument() {
        let t = CommandTask::new(
            "greet",
            def(&["/bin/echo", "{who}"], &[("who", "^[a-z]{1,16}$", None)]),
            1000,
        )
        .unwrap();
        assert_eq!(
            t.prepare(&["Robert'); DROP TABLE".into()]).unwrap_err(),
            "argument 1 (who) does not match ^[a-z]{1,16}$"
        );
        assert_eq!(
            t.prepare(&[]).unwrap_err(),
            "missing argument 1 (who): greet takes 1 argument (who)"
        );
        assert_eq!(
            t.prepare(&["a".into(), "b".into()]).unwrap_err(),
            "too many arguments: greet takes 1 argument (who), got 2"
        );
        // Patterns match whole values, even when written without anchors.
        let loose = CommandTask::new(
            "n",
            def(&["/bin/echo", "{n}"], &[("n", "[0-9]+", None)]),
            1000,
        )
        .unwrap();
        assert!(loose.prepare(&["12; rm -rf /".into()]).is_err());
        assert!(loose.prepare(&["12\n".into()]).is_err());
        assert!(loose.prepare(&["12".into()]).is_ok());
        let any =
            CommandTask::new("a", def(&["/bin/echo", "{v}"], &[("v", ".*", None)]), 0).unwrap();
        assert!(any.prepare(&["a\0b".into()]).unwrap_err().contains("NUL"));
        assert!(
            any.prepare(&["x".repeat(MAX_ARG_BYTES + 1)])
                .unwrap_err()
                .contains("longer than")
        );
    }

    #[test]
    fn an_unbalanced_pattern_cannot_escape_its_anchors() {
        assert!(anchored("a)|(.*").is_err());
        let multi = anchored("(?m)^[a-z]+$").unwrap();
        assert!(!multi.is_match("abc\nrm"));
    }

    #[test]
    fn templates_are_checked() {
        assert_eq!(
            field(CommandTask::new("t", def(&["echo", "x"], &[]), 0)),
            Field::Command(Some(0))
        );
        assert_eq!(
            field(CommandTask::new("t", def(&[], &[]), 0)),
            Field::Command(None)
        );
        assert_eq!(
            field(CommandTask::new("t", def(&["/bin/echo", "{who}"], &[]), 0)),
            Field::Command(Some(1))
        );
        assert_eq!(
            field(CommandTask::new(
                "t",
                def(&["/bin/echo", "--user={who}"], &[("who", "[a-z]+", None)]),
                0
            )),
            Field::Command(Some(1))
        );
        assert_eq!(
            field(CommandTask::new(
                "t",
                def(&["/bin/echo"], &[("who", "[a-z]+", None)]),
                0
            )),
            Field::Arg(0, ArgField::Name)
        );
        assert_eq!(
            field(CommandTask::new(
                "t",
                def(&["/bin/echo", "{who}"], &[("who", "[a-z", None)]),
                0
            )),
            Field::Arg(0, ArgField::Pattern)
        );
        assert_eq!(
            field(CommandTask::new(
                "t",
                def(&["/bin/echo"], &[("who", "[a-z]+", Some("LD_PRELOAD"))]),
                0
            )),
            Field::Arg(0, ArgField::Env)
        );
        assert_eq!(
            field(CommandTask::new("t", def(&["/nonexistent/prog"], &[]), 0)),
            Field::Command(Some(0))
        );
        // Shell variables stay literal when no declared argument has that name.
        assert!(CommandTask::new("t", def(&["/bin/sh", "-c", "echo ${i}"], &[]), 0).is_ok());
        let user = TaskDef {
            user: Some("nobody".into()),
            ..def(&["/bin/echo"], &[])
        };
        assert_eq!(field(CommandTask::new("t", user, 1000)), Field::User);
        let none = TaskDef {
            clients: Some(vec![]),
            ..def(&["/bin/echo"], &[])
        };
        assert_eq!(field(CommandTask::new("t", none, 0)), Field::Clients(None));
    }

    #[test]
    fn the_listing_never_shows_the_command() {
        let t = CommandTask::new(
            "greet",
            TaskDef {
                description: "Say hello".into(),
                ..def(
                    &["/bin/echo", "secret-flag", "{who}"],
                    &[("who", "[a-z]+", None)],
                )
            },
            0,
        )
        .unwrap();
        let text = serde_json::to_string(&t.info()).unwrap();
        assert!(
            !text.contains("secret-flag") && !text.contains("/bin/echo"),
            "{text}"
        );
        assert_eq!(t.info().args[0].pattern, "[a-z]+");
    }
}
