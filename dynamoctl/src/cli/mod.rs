//! The `dynamoctl` command line: arguments, the commands they run, how
//! results are printed, and which exit code each outcome gets.

mod args;
mod bench;
mod codec;
mod commands;
mod exit;
mod render;

pub use args::Args;
pub use commands::run;
pub use exit::{CliError, Exit};
