//! Benchmarks of the relay, run by `scripts/bench`.
//!
//! Every number is printed beside a reference measured in the same run on
//! the same machine, so the ratio means something even where the absolute
//! number depends on the machine. Nothing here asserts a time.
//!
//! - [`load`]: load peers holding reservations and announcing, on one
//!   relay or spread over several;
//! - [`relay_process`]: the relay binary as a child process, with its
//!   resource use read from `/proc`;
//! - [`stats`]: percentiles and medians;
//! - [`report`]: the rows both binaries print (tab-separated: metric, ours,
//!   reference, ratio), which `scripts/bench` turns into one table.
//!
//! The perf protocol (`/perf/1.0.0`) is `chat_protocol::perf`, which the
//! page serves as well.
pub mod load;
pub mod relay_process;
pub mod report;
pub mod stats;

/// A benchmark binary's exit status: success, or failure with its error
/// printed under the binary's `name`.
pub fn exit_code(name: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (default: `info` for the
/// benchmarks, `warn` for everything else).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,bench=info,relay_load=info,relay_throughput=info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
