//! CPU placement: every server process of a run (`server-tui` and the baseline servers) on
//! one set of CPUs, the harness (the client side) on the others, the same way for ours and
//! for the baseline, so that neither side of a comparison gets a CPU the other does not.
//!
//! The harness pins every thread of its own process for the length of a run and puts them
//! back afterwards; server processes are pinned in the child between fork and exec, so their
//! threads inherit it from the start.

use std::process::Command;
use std::sync::Mutex;

use serde::Serialize;

use crate::BenchError;

/// Where a run's processes ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Placement {
    /// The CPUs this process was allowed to use when the run started.
    pub allowed: Vec<usize>,
    /// The server processes' CPUs; empty when not pinned.
    pub servers: Vec<usize>,
    /// The harness's CPUs; empty when not pinned.
    pub harness: Vec<usize>,
    /// Why not pinned, when not.
    pub unpinned: Option<String>,
}

impl Placement {
    /// Choose for `pin`: `Some(true)` pins (an error with fewer than 2 CPUs), `Some(false)`
    /// does not, `None` pins when at least 2 CPUs are allowed.
    pub fn choose(pin: Option<bool>) -> Result<Self, BenchError> {
        let allowed = allowed_cpus()?;
        let unpinned = match pin {
            Some(false) => Some("--no-pin".to_string()),
            _ if allowed.len() < 2 => Some(format!("{} CPU allowed", allowed.len())),
            _ => None,
        };
        if let Some(why) = unpinned {
            if pin == Some(true) {
                return Err(BenchError::Setup(format!(
                    "pinning needs 2 CPUs or more: {why}"
                )));
            }
            return Ok(Self {
                allowed,
                unpinned: Some(why),
                ..Self::default()
            });
        }
        let (harness, servers) = split(&allowed);
        Ok(Self {
            allowed,
            servers,
            harness,
            unpinned: None,
        })
    }

    /// Whether the processes are pinned.
    pub fn pinned(&self) -> bool {
        !self.servers.is_empty()
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        match &self.unpinned {
            Some(why) => format!(
                "not pinned ({why}); CPUs {} shared by all",
                list(&self.allowed)
            ),
            None => format!(
                "servers (server-tui, baseline) on CPU {}, harness (client side) on CPU {}",
                list(&self.servers),
                list(&self.harness)
            ),
        }
    }

    /// Pin this process to the harness's CPUs and have every server started from now on
    /// pinned to the servers', until the guard is dropped (which puts everything back).
    pub fn apply(&self) -> Result<Pinned, BenchError> {
        if !self.pinned() {
            return Ok(Pinned { restore: None });
        }
        set_process(&self.harness)?;
        *lock() = Some(self.servers.clone());
        Ok(Pinned {
            restore: Some(self.allowed.clone()),
        })
    }
}

/// The placement of a run while it lasts; see [`Placement::apply`].
#[derive(Debug)]
pub struct Pinned {
    restore: Option<Vec<usize>>,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(cpus) = self.restore.take() {
            *lock() = None;
            let _ = set_process(&cpus);
        }
    }
}

/// The servers' CPUs while a run is pinned.
static SERVER_CPUS: Mutex<Option<Vec<usize>>> = Mutex::new(None);

fn lock() -> std::sync::MutexGuard<'static, Option<Vec<usize>>> {
    SERVER_CPUS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The harness's first half of `allowed` (at least one CPU) and the servers' rest: with
/// CPUs 0 and 1, the harness gets 0 and the servers 1.
fn split(allowed: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let half = (allowed.len() / 2).max(1);
    (allowed[..half].to_vec(), allowed[half..].to_vec())
}

fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn cpu_set(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain bits; all zero is the empty set. CPU_SET only writes inside
    // the set, and only for CPUs below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            if c < libc::CPU_SETSIZE as usize {
                libc::CPU_SET(c, &mut set);
            }
        }
        set
    }
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> Result<Vec<usize>, BenchError> {
    // SAFETY: sched_getaffinity(2) writes at most `size` bytes into the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(BenchError::Setup(format!(
                "sched_getaffinity: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// Put every thread of this process on `cpus`. A thread started while this runs inherits
/// its creator's set, so passes repeat until one finds nothing to change.
fn set_process(cpus: &[usize]) -> Result<(), BenchError> {
    let set = cpu_set(cpus);
    for _ in 0..10 {
        let mut changed = 0;
        for entry in std::fs::read_dir("/proc/self/task")?.flatten() {
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<i32>().ok())
            else {
                continue;
            };
            // SAFETY: plain syscalls on a thread id of this process, with a set of the
            // size given.
            unsafe {
                let size = std::mem::size_of::<libc::cpu_set_t>();
                let mut now: libc::cpu_set_t = std::mem::zeroed();
                if libc::sched_getaffinity(tid, size, &mut now) == 0 && libc::CPU_EQUAL(&now, &set)
                {
                    continue;
                }
                if libc::sched_setaffinity(tid, size, &set) != 0 {
                    let e = std::io::Error::last_os_error();
                    // A thread that ended in between.
                    if e.raw_os_error() == Some(libc::ESRCH) {
                        continue;
                    }
                    return Err(BenchError::Setup(format!(
                        "sched_setaffinity on thread {tid} to CPU {}: {e}",
                        list(cpus)
                    )));
                }
            }
            changed += 1;
        }
        if changed == 0 {
            return Ok(());
        }
    }
    Ok(())
}

/// Have `command` pin its process to the servers' CPUs if a run is pinned.
pub(crate) fn server_side(command: &mut Command) {
    let Some(cpus) = lock().clone() else {
        return;
    };
    let set = cpu_set(&cpus);
    // SAFETY: sched_setaffinity(2) is a plain syscall, safe between fork and exec; the set
    // was made before the fork.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves() {
        assert_eq!(split(&[0, 1]), (vec![0], vec![1]));
        assert_eq!(split(&[0, 1, 2]), (vec![0], vec![1, 2]));
        assert_eq!(split(&[2, 3, 6, 7]), (vec![2, 3], vec![6, 7]));
    }

    #[test]
    fn not_pinned_when_asked_not_to() {
        let p = Placement::choose(Some(false)).unwrap();
        assert!(!p.pinned());
        assert!(!p.allowed.is_empty());
        assert!(p.describe().starts_with("not pinned (--no-pin)"));
        drop(p.apply().unwrap());
    }
}
