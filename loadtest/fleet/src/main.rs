//! `qs-fleet`: the SSE fleet load generator. Thin entry point: parse options, then run either the
//! coordinator (the default) or a worker process (`--worker`, started by the coordinator).
#![forbid(unsafe_code)]

mod chart;
mod cli;
mod coordinator;
mod net;
mod proto;
mod publisher;
mod sse;
mod stats;
mod wire;
mod worker;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    if let Some(spec) = &args.worker {
        return match serde_json::from_str::<proto::WorkerSpec>(spec) {
            Ok(spec) => {
                net::raise_nofile();
                worker::run(spec)
            }
            Err(e) => {
                eprintln!("qs-fleet: bad --worker spec: {e}");
                ExitCode::from(64)
            }
        };
    }
    let errors = args.validate();
    if !errors.is_empty() {
        for e in errors {
            eprintln!("qs-fleet: {e}");
        }
        return ExitCode::from(64);
    }
    coordinator::run(args)
}
