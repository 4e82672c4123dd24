//! Runs one `dynamoctl` command against the cluster and renders its result.

use dynamo_client::{Client, ClientOptions, ReadOptions};
use futures::future::join_all;

use super::args::{Args, Command};
use super::codec::Codec;
use super::render::{self, StatusRow};
use super::{CliError, Exit};

/// What a command prints on stdout and how `dynamoctl` then exits.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    /// The rendered result.
    pub stdout: String,
    /// [`Exit::Ok`], or [`Exit::NotFound`] for a key without live siblings.
    pub exit: Exit,
}

impl Report {
    fn ok(stdout: String) -> Self {
        Self {
            stdout,
            exit: Exit::Ok,
        }
    }
}

/// Connects to `args.endpoint` and runs `args.command`.
///
/// # Errors
///
/// Bad values on the command line, values that cannot be printed, and
/// every failure of the client.
pub async fn run(args: Args) -> Result<Report, CliError> {
    let format = args.output;
    // Decode the value before any network round trip: a usage error should
    // not wait for the cluster.
    let value = match &args.command {
        Command::Put { value, base64, .. } => Some(Codec::from_flag(*base64).decode(value)?),
        _ => None,
    };
    let options = ClientOptions {
        timeout: args.timeout,
    };
    let client = Client::connect_with(&args.endpoint, options).await?;
    match args.command {
        Command::Put { key, write, .. } => {
            let value = value.expect("decoded above for put");
            let context = client
                .put_with(key, value, write.context.as_ref(), write.options())
                .await?;
            Ok(Report::ok(render::written(format, &context)))
        }
        Command::Get { key, r, base64 } => {
            let result = client.get_with(key, ReadOptions { r }).await?;
            let stdout = render::get(format, &result, Codec::from_flag(base64))?;
            let exit = if result.is_found() {
                Exit::Ok
            } else {
                Exit::NotFound
            };
            Ok(Report { stdout, exit })
        }
        Command::Delete { key, write } => {
            let context = client
                .delete_with(key, write.context.as_ref(), write.options())
                .await?;
            Ok(Report::ok(render::written(format, &context)))
        }
        Command::Status => {
            let ring = client.ring();
            let client = &client;
            let rows = join_all(ring.members().iter().map(|member| {
                let partitions = ring.partitions_owned(member);
                async move {
                    StatusRow {
                        member,
                        partitions,
                        status: client
                            .status(&member.address)
                            .await
                            .map_err(|err| err.to_string()),
                    }
                }
            }))
            .await;
            Ok(Report::ok(render::status(format, &rows)))
        }
        Command::Ring { partitions } => {
            Ok(Report::ok(render::ring(format, &client.ring(), partitions)))
        }
    }
}
