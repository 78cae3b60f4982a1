//! A browser stopped without a goodbye: every process of its tree gets
//! SIGSTOP, as a laptop lid that closes or a tab the system froze. The
//! processes stay stopped until [`Frozen::kill`] (or the drop, even in a
//! panicking test) kills them, so nothing lingers after a test.

use std::{collections::BTreeSet, path::Path};

use anyhow::{Context as _, bail};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// A process tree stopped with SIGSTOP; killed on [`Frozen::kill`] or drop.
#[derive(Debug)]
pub struct Frozen {
    pids: Vec<i32>,
    done: bool,
}

impl Frozen {
    /// Stops every process whose command line mentions `marker` (a
    /// browser's profile directory, say), and all their descendants.
    pub fn stop_tree_of(marker: &Path) -> anyhow::Result<Self> {
        let marker = marker.to_string_lossy().into_owned();
        let pids = tree_of(&marker)?;
        if pids.is_empty() {
            bail!("no process mentions {marker} on its command line");
        }
        let mut frozen = Self {
            pids: Vec::new(),
            done: false,
        };
        for pid in pids {
            // A process that ended meanwhile is not an error.
            if kill(Pid::from_raw(pid), Signal::SIGSTOP).is_ok() {
                frozen.pids.push(pid);
            }
        }
        Ok(frozen)
    }

    /// The processes stopped.
    pub fn pids(&self) -> &[i32] {
        &self.pids
    }

    /// Kills them all (SIGKILL ends a stopped process too).
    pub fn kill(mut self) {
        self.kill_all();
    }

    fn kill_all(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        for pid in &self.pids {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The processes whose command line contains `marker`, and their
/// descendants, from `/proc`.
fn tree_of(marker: &str) -> anyhow::Result<Vec<i32>> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    let mut roots: BTreeSet<i32> = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").context("read /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        // The process may end while we look: skip it then.
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<i32>().ok())
        else {
            continue;
        };
        parents.push((pid, ppid));
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            roots.insert(pid);
        }
    }
    let mut tree = roots;
    loop {
        let before = tree.len();
        for (pid, ppid) in &parents {
            if tree.contains(ppid) {
                tree.insert(*pid);
            }
        }
        if tree.len() == before {
            break;
        }
    }
    Ok(tree.into_iter().collect())
}
