//! `dynamoctl`: reads, writes and inspects a DynamoKV cluster from the
//! command line. See `dynamoctl --help`.

mod cli;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

/// mimalloc keeps the load generator (`dynamoctl bench`) cheap per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    let (stdout, exit) = match cli::run(args).await {
        Ok(report) => (report.stdout, report.exit),
        Err(err) => {
            eprintln!("error: {err}");
            return err.exit().into();
        }
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(stdout.as_bytes()).and_then(|()| out.flush()) {
        // A closed pipe (`dynamoctl get k | head -0`) is the reader's choice.
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: cannot write the output: {err}");
            cli::Exit::Failure.into()
        }
        _ => exit.into(),
    }
}
