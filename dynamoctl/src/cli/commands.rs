//! Runs one `dynamoctl` command against the cluster and renders its result.

use dynamo_client::{Client, ClientOptions, ReadOptions, Routing};
use futures::future::join_all;

use super::args::{Args, Command};
use super::codec::Codec;
use super::render::{self, Probe, StatusError, StatusRow};
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
    if let Command::Scale { replicas, file } = &args.command {
        return scale(file, *replicas, format);
    }
    let options = ClientOptions {
        timeout: args.timeout,
        routing: if args.via_endpoint {
            Routing::ViaEndpoint
        } else {
            Routing::Direct
        },
        tls: args.tls()?,
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&args.endpoint, options).await?;
    let bucket = client.bucket(args.bucket.clone());
    match args.command {
        Command::Scale { .. } => unreachable!("scale returns before connecting"),
        Command::Bench(bench) => {
            let report = super::bench::run(&client, &bench).await?;
            Ok(Report::ok(render::bench(format, &report)))
        }
        Command::Put { key, write, .. } => {
            let value = value.expect("decoded above for put");
            let context = bucket
                .put_with(key, value, write.context.as_ref(), write.options())
                .await?;
            Ok(Report::ok(render::written(format, &context)))
        }
        Command::Get { key, r, base64 } => {
            let result = bucket.get_with(key, ReadOptions { r }).await?;
            let stdout = render::get(format, &result, Codec::from_flag(base64))?;
            let exit = if result.is_found() {
                Exit::Ok
            } else {
                Exit::NotFound
            };
            Ok(Report { stdout, exit })
        }
        Command::Delete { key, write } => {
            let context = bucket
                .delete_with(key, write.context.as_ref(), write.options())
                .await?;
            Ok(Report::ok(render::written(format, &context)))
        }
        Command::Status if args.via_endpoint => {
            // Only the endpoint is reachable: its row carries what it
            // reports, including how it sees every other member.
            let ring = client.ring();
            let status = client.status(&args.endpoint).await?;
            let rows: Vec<StatusRow<'_>> = ring
                .members()
                .iter()
                .map(|member| StatusRow {
                    member,
                    partitions: ring.partitions_owned(member),
                    status: if member.id == status.id {
                        Probe::Answered(status.clone())
                    } else {
                        seen_by(&status, member).unwrap_or_else(|| {
                            Probe::Failed(StatusError::NotAsked {
                                endpoint: args.endpoint.clone(),
                                member: member.id.clone(),
                            })
                        })
                    },
                })
                .collect();
            Ok(Report::ok(render::status(format, &rows)))
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
                        status: match client.status(&member.address).await {
                            Ok(status) => Probe::Answered(status),
                            Err(error) => Probe::Failed(error.into()),
                        },
                    }
                }
            }))
            .await;
            Ok(Report::ok(render::status(format, &rows)))
        }
        Command::Ring { partitions } => {
            let ring = client.ring();
            let shown = if args.bucket.is_empty() {
                partitions.then_some(ring.n())
            } else {
                Some(ring.bucket_n(&args.bucket).ok_or_else(|| CliError::Usage {
                    message: format!("bucket {} is not declared in this cluster", args.bucket),
                })?)
            };
            Ok(Report::ok(render::ring(format, &ring, shown)))
        }
    }
}

/// Rewrites the `replicas:` line of the manifest's spec, keeping the rest of
/// the file (comments included) as it is.
fn scale(
    file: &std::path::Path,
    replicas: u32,
    format: super::args::Format,
) -> Result<Report, CliError> {
    let file_error = |source| CliError::File {
        path: file.display().to_string(),
        source,
    };
    let text = std::fs::read_to_string(file).map_err(file_error)?;
    let updated = set_replicas(&text, replicas).ok_or_else(|| CliError::Usage {
        message: format!("{} has no `spec:` with a `replicas:` line", file.display()),
    })?;
    std::fs::write(file, updated).map_err(file_error)?;
    Ok(Report::ok(match format {
        super::args::Format::Json => format!("{{\"replicas\":{replicas}}}\n"),
        super::args::Format::Text => format!(
            "{} now asks for {replicas} members; dynamo-operator local applies it\n",
            file.display()
        ),
    }))
}

/// The manifest text with the first `replicas:` line under `spec:` set.
fn set_replicas(text: &str, replicas: u32) -> Option<String> {
    let mut in_spec = false;
    let mut done = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            in_spec = trimmed.starts_with("spec:");
        }
        if in_spec && !done && indent > 0 && trimmed.starts_with("replicas:") {
            let ending = if line.ends_with('\n') { "\n" } else { "" };
            out.push_str(&format!("{}replicas: {replicas}{ending}", &line[..indent]));
            done = true;
        } else {
            out.push_str(line);
        }
    }
    done.then_some(out)
}

/// How the node that reported `status` sees `member`, if it lists it.
fn seen_by(status: &dynamo_client::NodeStatus, member: &dynamo_client::Member) -> Option<Probe> {
    let seen = status
        .members
        .iter()
        .find(|seen| seen.member.as_ref().is_some_and(|m| m.id == member.id))?;
    Some(Probe::SeenBy {
        by: status.id.clone(),
        state: seen.state.clone(),
        last_heard_ms: seen.last_heard_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::set_replicas;

    #[test]
    fn scale_rewrites_only_the_spec_replicas() {
        let text = "# replicas: 1 in a comment\nmetadata:\n  name: demo\nspec:\n  replicas: 3 # members\n  partitions: 64\n";
        let updated = set_replicas(text, 5).expect("has replicas");
        assert_eq!(
            updated,
            "# replicas: 1 in a comment\nmetadata:\n  name: demo\nspec:\n  replicas: 5\n  partitions: 64\n"
        );
        assert_eq!(set_replicas("spec:\n  partitions: 64\n", 2), None);
    }
}
