//! Named network namespaces (`ip netns`), removed with everything still
//! running inside them on drop, on SIGINT/SIGTERM, and, for a run killed
//! outright, by the next run ([`remove_stale`]).
//!
//! Names are `natlab-<pid>-<tag>`: the pid tells a later run whether the
//! run that made a namespace is still alive, so two runs never remove each
//! other's namespaces.

use std::{
    collections::BTreeSet,
    fs::File,
    path::Path,
    process::{Command, Output, Stdio},
    sync::Mutex,
};

use anyhow::{Context as _, anyhow, bail};
use nix::{
    sched::{CloneFlags, setns},
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// Every namespace of the lab starts with this.
pub const PREFIX: &str = "natlab-";

/// The namespaces this process made and has not removed yet: what a signal
/// handler removes before the process exits.
static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// A network namespace of this run; removed on drop, after every process
/// inside it is killed.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `natlab-<pid>-<tag>` with its loopback up (chromedriver and
    /// Chromium talk over it) and IPv6 off (the lab is IPv4: no link-local
    /// candidates to wade through in the logs).
    pub fn create(tag: &str) -> anyhow::Result<Self> {
        let name = format!("{PREFIX}{}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        LIVE.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.clone());
        let netns = Self { name };
        netns.ip(&["link", "set", "lo", "up"])?;
        netns.exec("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
        netns.exec("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
        Ok(netns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <name> <args>`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `program args` inside the namespace and returns its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `program` inside the namespace with `stdin` as its input.
    pub fn exec_with_input(&self, program: &str, args: &[&str], stdin: &str) -> anyhow::Result<()> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run ip netns exec {} {program}", self.name))?;
        if let Some(mut input) = child.stdin.take() {
            std::io::Write::write_all(&mut input, stdin.as_bytes())
                .with_context(|| format!("write the input of {program} in {}", self.name))?;
        }
        check(
            &format!("ip netns exec {} {program} {}", self.name, args.join(" ")),
            child.wait_with_output()?,
        )?;
        Ok(())
    }

    /// The command line that runs what follows it inside the namespace.
    pub fn wrapper(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .map(str::to_owned)
            .to_vec()
    }

    /// A tokio command running `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `f` on a thread that has entered the namespace: the sockets it
    /// opens belong to the namespace, wherever they are used afterwards.
    /// This process's other threads stay where they are.
    pub fn run_inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        let file = self.open()?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    enter(&file)?;
                    Ok(f())
                })
                .join()
                .map_err(|_| anyhow!("the thread in namespace {} panicked", self.name))?
        })
    }

    /// The namespace's file, for [`enter`].
    pub fn open(&self) -> anyhow::Result<File> {
        let path = Path::new("/run/netns").join(&self.name);
        File::open(&path).with_context(|| format!("open {}", path.display()))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
        LIVE.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.name);
    }
}

/// Moves the calling thread into the namespace `file` was opened from.
pub fn enter(file: &File) -> anyhow::Result<()> {
    setns(file, CloneFlags::CLONE_NEWNET).context("setns into a network namespace (needs root)")
}

/// Kills every process inside namespace `name`, then deletes it. Errors are
/// ignored: this runs on drop and on the way out.
fn remove(name: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", name]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|pid| pid.parse::<i32>().ok())
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let _ = run("ip", &["netns", "delete", name]);
}

/// Removes the lab's namespaces left by runs that are no longer alive (a
/// run killed with SIGKILL cannot clean up), with whatever still runs in
/// them. Returns their names.
pub fn remove_stale() -> anyhow::Result<Vec<String>> {
    let listing = run("ip", &["netns", "list"])?;
    let mut removed = Vec::new();
    for name in listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive {
            remove(name);
            removed.push(name.to_owned());
        }
    }
    Ok(removed)
}

/// On SIGINT, SIGTERM or SIGHUP (Ctrl-C, nextest's timeout), removes this
/// process's namespaces with what runs in them, then exits. Call once,
/// inside a tokio runtime.
pub fn remove_on_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            _ = hangup.recv() => "SIGHUP",
        };
        let live: Vec<String> = LIVE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .cloned()
            .collect();
        eprintln!("natlab: {name}: removing namespaces {live:?}");
        for name in &live {
            remove(name);
        }
        std::process::exit(130);
    });
    Ok(())
}

/// What the lab needs from the machine, or an error naming what is
/// missing: root, `ip` (iproute2), `nft` (nftables) and `sysctl` (procps).
pub fn check_prerequisites() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root (network namespaces and nftables need it; CI runs as root)".to_owned());
    }
    for (program, package) in [
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("sysctl", "procps"),
    ] {
        let found = Command::new(program)
            .arg(if program == "sysctl" {
                "--version"
            } else {
                "-V"
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !found {
            missing.push(format!(
                "`{program}` (Debian: {package}; scripts/setup installs it)"
            ));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        bail!(
            "the NAT lab cannot run here; missing: {}. Build and run the tests with NATLAB_SKIP=1 to skip it on purpose (they are then reported as skipped).",
            missing.join(", ")
        )
    }
}

/// Runs `program args`; its stdout, or an error with the command line and
/// its stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    check(&format!("{program} {}", args.join(" ")), output)
}

fn check(command_line: &str, output: Output) -> anyhow::Result<String> {
    if !output.status.success() {
        bail!(
            "`{command_line}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
