//! Command-line interface of the client: flags, subcommands, their defaults and their help
//! (headings, examples, which options each subcommand lists), and the rule that everything
//! after `send TASK` belongs to the task ([`SendWords`]). Without a subcommand the client runs
//! full screen on a terminal, or the headless console otherwise.
//!
//! The options are global: accepted before or after the subcommand. [`command`] is the one
//! the binary parses with; its subcommands list only the option groups that change what they
//! do (a group that does not is still accepted there, and ignored).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use csc_shared::pairing::Code;
use csc_shared::state::CLIENT_STATE_ENV;

/// Environment variable `pair` reads the code from when `--code` is not given.
pub const PAIR_CODE_ENV: &str = "CSC_PAIR_CODE";

/// Heading of the options every subcommand takes.
const GLOBAL: &str = "Global options";

/// Finds its server, pairs with the code shown on the server's screen, and runs tasks on it.
#[derive(Debug, Parser)]
#[command(name = "client-tui", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Server port used when an address has none.
    #[arg(long, global = true, default_value_t = csc_shared::DEFAULT_PORT, help_heading = GLOBAL)]
    pub port: u16,
    /// State folder (default: the platform data folder).
    #[arg(long, global = true, env = CLIENT_STATE_ENV, value_name = "DIR", help_heading = GLOBAL)]
    pub state_dir: Option<PathBuf>,
    /// Name shown to the server when pairing (default: host name).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub name: Option<String>,
    /// Print plain lines instead of the full-screen interface.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub no_tui: bool,
    /// Print one JSON object per line on stdout (implies --no-tui); every line's fields:
    /// docs/protocol.md Appendix A.2.
    #[arg(short = 'j', long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// No colours in the full-screen interface (as does a non-empty NO_COLOR).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub no_color: bool,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    #[command(flatten)]
    pub link: LinkArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Which server to talk to.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Server selection")]
pub struct Target {
    /// Server address, HOST or HOST:PORT (tried first; the server's id is still checked).
    #[arg(long, global = true, value_name = "HOST[:PORT]")]
    pub server: Option<String>,
    /// Paired server to use: id (full, or a prefix such as 3F2A-91C0).
    #[arg(long, global = true, value_name = "ID")]
    pub server_id: Option<String>,
    /// Paired server to use, by name.
    #[arg(long, global = true, value_name = "NAME")]
    pub server_name: Option<String>,
}

/// How to look for servers. Giving `--subnet` limits every probe to those subnets (and turns
/// off mDNS and the limited broadcast).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Discovery options")]
pub struct DiscoveryArgs {
    /// Subnet to search (repeatable), e.g. 192.168.1.0/24; default: every local interface,
    /// each capped to a /22 around its address.
    #[arg(long = "subnet", global = true, value_name = "CIDR", value_parser = parse_subnet)]
    pub subnets: Vec<ipnet::Ipv4Net>,
    /// TCP connect timeout per host, in milliseconds.
    #[arg(long, global = true, default_value_t = 300, value_name = "N")]
    pub timeout_ms: u64,
    /// Connection attempts in flight at once during the sweep.
    #[arg(long, global = true, default_value_t = csc_shared::discovery::DiscoveryOptions::default().concurrency, value_name = "N")]
    pub concurrency: usize,
    /// New hosts started per 3 seconds at most (0: three quarters of the kernel's
    /// neighbour-table limit, so no host is lost to a full ARP table).
    #[arg(long, global = true, default_value_t = 0, value_name = "N")]
    pub per_window: usize,
    /// Hosts swept at most, over all subnets.
    #[arg(long, global = true, default_value_t = 4096, value_name = "N")]
    pub max_hosts: usize,
    /// Do not send UDP broadcast probes.
    #[arg(long, global = true)]
    pub no_broadcast: bool,
    /// Do not browse mDNS.
    #[arg(long, global = true)]
    pub no_mdns: bool,
    /// Do not sweep subnets with TCP connects.
    #[arg(long, global = true)]
    pub no_scan: bool,
}

/// How the client keeps its connection to a paired server alive (the console and `send`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Link options")]
pub struct LinkArgs {
    /// Send a keep-alive ping after this long without a message from the server.
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "3s", value_name = "DURATION")]
    pub keepalive: Duration,
    /// Declare the server lost after this long without any message from it (no reply, no
    /// pong), and reconnect.
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "8s", value_name = "DURATION")]
    pub dead_after: Duration,
    /// How long a task waits for a lost connection to come back before it fails.
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "10s", value_name = "DURATION")]
    pub wait: Duration,
}

fn parse_subnet(text: &str) -> Result<ipnet::Ipv4Net, String> {
    csc_shared::discovery::net::parse_subnet(text)
}

fn parse_code(text: &str) -> Result<Code, String> {
    Code::parse(text).map_err(|e| e.to_string())
}

/// The end of `client-tui --help`.
const AFTER_HELP: &str = "\
Examples:
  client-tui                                   full screen: find, pair, run tasks
  client-tui scan --subnet 192.168.1.0/24      list the servers on one subnet
  client-tui pair --server 10.0.0.5            pair, typing the code the server shows
  client-tui send echo hello                   run a task on the paired server

Each subcommand's --help lists the options that change what it does. Exit codes: README.";

const SCAN_HELP: &str = "\
Examples:
  client-tui scan                               every local subnet, broadcast and mDNS
  client-tui scan --subnet 192.168.1.0/24 -j    one subnet only, NDJSON events
  client-tui scan --no-mdns --timeout-ms 800    a slow network, without mDNS

Exit code 16 when nothing is found.";

const PAIR_HELP: &str = "\
Examples:
  client-tui pair                               the only unpaired server found
  client-tui pair --server 10.0.0.5:47474       that address; type the code when asked
  echo 123456 | client-tui pair --server 10.0.0.5
  client-tui pair --server 10.0.0.5 --code 123456
  CSC_PAIR_CODE=123456 client-tui pair --server-name front-desk

The code comes from --code, else CSC_PAIR_CODE, else stdin. A code given up front must be \
one the server drew ahead (`p` on its screen, or `server-tui pairing code`): the next request \
gets it. A code on the command line can be read by other users of this machine (ps, /proc) \
while it is valid; the environment variable can be read only by the same user.";

const SEND_HELP: &str = "\
Everything after TASK belongs to the task, as with `ssh HOST COMMAND`: client-tui's own \
options go before TASK. A `--` right after TASK is dropped and passes what follows to the \
task without the warning printed when a task argument looks like one of client-tui's \
options. A `--` before TASK is accepted too: it ends client-tui's options.

Examples:
  client-tui send ping
  client-tui send greet ada                     hello ada
  client-tui send -j --server-id 3F2A echo hi   client-tui's options before the task
  client-tui send echo -- --json                prints --json: it is echo's
  client-tui send cat < photo.jpg > copy.jpg    stdin goes to the task

Exit codes: 0 ok, 8-14 how the run failed, 100+n the remote program exited with n (README).";

/// Subcommands. Without one, the client runs full screen when stdout is a terminal (scan,
/// pair, task console); with `--no-tui`, `--json` or no terminal, it connects (pairing first
/// if needed) and runs tasks read line by line from stdin.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Search the network for servers and list them.
    #[command(after_help = SCAN_HELP)]
    Scan,
    /// Pair with a server (found by discovery unless --server is given), with the code shown
    /// on the server.
    #[command(after_help = PAIR_HELP)]
    Pair {
        /// The code the server shows (digits; spaces and dashes are ignored). Default:
        /// $CSC_PAIR_CODE, else read from stdin (prompted on a terminal).
        #[arg(long, value_name = "CODE", env = PAIR_CODE_ENV, hide_env_values = true, value_parser = parse_code)]
        code: Option<Code>,
    },
    /// List the tasks the paired server lets this client run, with their arguments.
    Tasks,
    /// Run one task on a paired server: its output streams to stdout and stderr, stdin goes
    /// to it when the task reads stdin, Ctrl-C cancels it; the exit code tells how it ended.
    #[command(after_help = SEND_HELP)]
    Send {
        /// Connect directly, even when an agent serves this state folder.
        #[arg(long)]
        no_agent: bool,
        /// The task (ping, echo, time, info, or any task the server offers) and its
        /// arguments: everything from TASK on is the task's.
        #[arg(value_name = "TASK [ARGS]", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// Keep a link to every paired server (or the one --server-id or --server-name names)
    /// and serve programs on this machine through agent.sock in the state folder
    /// (docs/agent.md); `send` then goes through it. Runs in the foreground until Ctrl-C or
    /// SIGTERM; logs on stderr, `--json` status events on stdout.
    Agent,
    /// List paired servers.
    Servers,
    /// Forget a paired server; the server is asked to revoke the pairing too.
    Forget {
        /// Server id (full or prefix) or name.
        id: String,
    },
    /// Print a shell completion script on stdout, e.g.
    /// `client-tui completions bash > ~/.local/share/bash-completion/completions/client-tui`.
    Completions {
        /// The shell.
        shell: tui_kit::docs::Shell,
    },
    /// Print the manual page (roff) on stdout, e.g.
    /// `client-tui man > ~/.local/share/man/man1/client-tui.1`.
    Man,
}

/// `send`'s words split by the rule `send --help` states: the task, its arguments, and the
/// arguments that look like client-tui's own options (for a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWords {
    /// The task's name.
    pub task: String,
    /// Its arguments, exactly as given (less a `--` right after the task).
    pub args: Vec<String>,
    /// A warning for each argument that looks like an option of client-tui's `send`;
    /// none after a `--`.
    pub look_like_ours: Vec<String>,
}

impl SendWords {
    /// Split `words` (the task first), checking the arguments against the options of `send`
    /// (the built subcommand, so that the global options are in it). A task that starts with
    /// `-` is an option clap did not know: task names start with a letter.
    pub fn split(words: &[String], send: &clap::Command) -> Result<Self, String> {
        let Some((task, rest)) = words.split_first() else {
            return Err("no task given (see client-tui send --help)".into());
        };
        if task.starts_with('-') {
            return Err(format!(
                "{task:?} is not an option of client-tui send, nor a task (task names start with a letter); see client-tui send --help"
            ));
        }
        let (args, check) = match rest.split_first() {
            Some((dash, after)) if dash == "--" => (after.to_vec(), false),
            _ => (rest.to_vec(), true),
        };
        let look_like_ours = if check {
            args.iter()
                .filter_map(|a| ours(a, send).map(|o| (a.clone(), o)))
                .map(|(arg, hint)| format!("warning: {arg:?} comes after the task, so it was passed to the task {task:?}; to make it client-tui's own option, put it before the task (client-tui send {hint} {task} …), or write `send {task} -- ARGS` to pass it on without this warning"))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            task: task.clone(),
            args,
            look_like_ours,
        })
    }
}

/// When `arg` names one of `cmd`'s options (`--long`, `--long=VALUE`, or a short one such as
/// `-j`, also at the head of a cluster such as `-jx`): how to write it before the task.
fn ours(arg: &str, cmd: &clap::Command) -> Option<String> {
    let option = if let Some(long) = arg.strip_prefix("--") {
        let name = long.split('=').next().unwrap_or(long);
        cmd.get_arguments().find(|a| {
            !name.is_empty()
                && (a.get_long() == Some(name)
                    || a.get_all_aliases()
                        .is_some_and(|names| names.contains(&name)))
        })?
    } else {
        let c = arg.strip_prefix('-')?.chars().next()?;
        cmd.get_arguments().find(|a| a.get_short() == Some(c))?
    };
    let flag = match (option.get_long(), option.get_short()) {
        (Some(long), _) => format!("--{long}"),
        (None, Some(short)) => format!("-{short}"),
        (None, None) => return None,
    };
    let takes_value = option.get_num_args().is_some_and(|n| n.takes_values());
    Some(match option.get_value_names() {
        Some([value, ..]) if takes_value => format!("{flag} {value}"),
        _ if takes_value => format!("{flag} VALUE"),
        _ => flag,
    })
}

/// Which option groups change what a subcommand does; the others are hidden from its help.
fn groups_for(sub: &str) -> (bool, bool, bool) {
    // (server selection, discovery, link)
    match sub {
        "scan" => (false, true, false),
        "pair" => (true, true, false),
        "tasks" | "send" | "agent" => (true, true, true),
        _ => (false, false, false),
    }
}

/// The command line the binary parses: [`Cli`], with each subcommand's help trimmed to the
/// option groups that apply to it (every option is still accepted everywhere).
pub fn command() -> clap::Command {
    let ids = |cmd: clap::Command| -> Vec<String> {
        cmd.get_arguments()
            .map(|a| a.get_id().to_string())
            .collect()
    };
    let target = ids(Target::augment_args(clap::Command::new("t")));
    let discovery = ids(DiscoveryArgs::augment_args(clap::Command::new("d")));
    let link = ids(LinkArgs::augment_args(clap::Command::new("l")));
    let globals = ["port", "state_dir", "name", "no_tui", "json", "no_color"].map(String::from);
    let mut cmd = Cli::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for sub in names {
        let (t, d, l) = groups_for(&sub);
        let mut hide: Vec<&String> = Vec::new();
        for (wanted, group) in [(t, &target), (d, &discovery), (l, &link)] {
            if !wanted {
                hide.extend(group);
            }
        }
        if matches!(sub.as_str(), "completions" | "man") {
            hide.extend(&globals);
        }
        // A subcommand that has an argument of a global's id is not given the global when
        // clap builds the command: a hidden copy keeps the option accepted there (its value
        // still reaches `Cli`) without listing it.
        let copies: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| hide.iter().any(|id| a.get_id() == id.as_str()))
            .map(|a| a.clone().hide(true))
            .collect();
        cmd = cmd.mut_subcommand(&sub, |sc| sc.args(copies));
    }
    cmd
}

/// Parse `args` (program name first) with [`command`].
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}
