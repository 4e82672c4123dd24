//! Command-line arguments of `dynamoctl`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use dynamo_bench::Distribution;
use dynamo_client::{Context, Durability, TlsOptions, WriteOptions};

/// Command-line client of a DynamoKV cluster.
///
/// Exit codes: 0 success, 1 other errors, 2 usage errors, 3 key not found,
/// 4 cluster unavailable (unreachable, timed out or too few replicas).
#[derive(Debug, Parser)]
#[command(name = "dynamoctl", version)]
pub struct Args {
    /// Any node of the cluster, as host:port.
    #[arg(
        long,
        global = true,
        env = "DYNAMO_ENDPOINT",
        default_value = "127.0.0.1:7400"
    )]
    pub endpoint: String,
    /// Send every request to --endpoint, which coordinates it or forwards
    /// it to a replica, instead of straight to a replica at its ring
    /// address. For an endpoint that is the only address reachable from
    /// here, such as `kubectl port-forward svc/demo 7400:7400`.
    #[arg(
        long,
        global = true,
        env = "DYNAMO_VIA_ENDPOINT",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub via_endpoint: bool,
    /// How results are printed.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Deadline of each request, retries and hedges to other replicas
    /// included, for example 5s, 500ms or 1m.
    #[arg(long, global = true, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// PEM file of the cluster's CA: talk TLS and verify the nodes'
    /// certificates with it.
    #[arg(id = "tls_ca", long = "ca", global = true, env = "DYNAMO_CA")]
    pub ca: Option<PathBuf>,
    /// PEM file of this client's certificate, for clusters that require
    /// client certificates (with --key).
    #[arg(
        id = "tls_cert",
        long = "cert",
        global = true,
        env = "DYNAMO_CERT",
        requires = "tls_ca"
    )]
    pub cert: Option<PathBuf>,
    /// PEM file of this client's private key (with --cert).
    #[arg(
        id = "tls_key",
        long = "key",
        global = true,
        env = "DYNAMO_KEY",
        requires = "tls_cert"
    )]
    pub key: Option<PathBuf>,
    /// The name the nodes' certificates must carry, instead of each
    /// address's host (for a port-forward to 127.0.0.1, say).
    #[arg(long, global = true, env = "DYNAMO_SERVER_NAME", requires = "tls_ca")]
    pub server_name: Option<String>,
    /// The bucket of the key for get, put, delete and bench (empty: the
    /// default bucket); for `ring`, show that bucket's preference lists.
    #[arg(long, global = true, env = "DYNAMO_BUCKET", default_value = "")]
    pub bucket: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Args {
    /// The TLS options the flags ask for; `None` for plaintext.
    ///
    /// # Errors
    /// A file that cannot be read, or a certificate without its key.
    pub fn tls(&self) -> Result<Option<TlsOptions>, dynamo_client::Error> {
        let Some(ca) = &self.ca else {
            return Ok(None);
        };
        let mut tls = TlsOptions::from_files(ca, self.cert.as_deref(), self.key.as_deref())?;
        tls.server_name.clone_from(&self.server_name);
        Ok(Some(tls))
    }
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lines for people.
    Text,
    /// One JSON document for programs.
    Json,
}

/// A `dynamoctl` command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write VALUE under KEY and print the new context.
    Put {
        /// The key.
        key: String,
        /// The value (UTF-8, or base64 with --base64).
        value: String,
        /// Write options.
        #[command(flatten)]
        write: WriteArgs,
        /// VALUE is base64 (for binary values).
        #[arg(long)]
        base64: bool,
    },
    /// Read KEY: print every live sibling and the context.
    Get {
        /// The key.
        key: String,
        /// Read quorum, 1..N (default: the cluster's R).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        r: Option<u32>,
        /// Print values as base64.
        #[arg(long)]
        base64: bool,
    },
    /// Delete KEY and print the tombstone's context.
    Delete {
        /// The key.
        key: String,
        /// Write options.
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Show every member of the ring and what it reports.
    Status,
    /// Show the ring: partitions, quorums and members.
    Ring {
        /// Also list the owner and preference list of every partition.
        #[arg(long)]
        partitions: bool,
    },
    /// Load the cluster YCSB-style and report throughput and latency
    /// percentiles per operation.
    Bench(BenchArgs),
    /// Set the member count in a DynamoCluster manifest that
    /// `dynamo-operator local` follows (on Kubernetes, use `kubectl scale`).
    Scale {
        /// The desired number of members.
        replicas: u32,
        /// The manifest the local operator runs.
        #[arg(
            short = 'f',
            long = "file",
            default_value = "examples/dynamocluster.yaml"
        )]
        file: std::path::PathBuf,
    },
}

/// Options shared by `put` and `delete`.
#[derive(Debug, clap::Args)]
pub struct WriteArgs {
    /// Context from an earlier get (base64); without it the write adds a
    /// sibling.
    #[arg(long)]
    pub context: Option<Context>,
    /// Write quorum, 1..N (default: the cluster's W).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub w: Option<u32>,
    /// Fsync on every replica before acknowledging.
    #[arg(long)]
    pub sync: bool,
}

impl WriteArgs {
    /// The library's options for these flags.
    pub fn options(&self) -> WriteOptions {
        WriteOptions {
            w: self.w,
            durability: self.sync.then_some(Durability::Sync),
        }
    }
}

/// Why a duration argument cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    /// Zero where a positive duration is needed.
    #[error("the duration must be positive")]
    Zero,
    /// A unit other than ms, s or m.
    #[error("unknown unit {unit:?}; use ms, s or m")]
    Unit {
        /// The unit given.
        unit: String,
    },
    /// Not a number followed by a unit.
    #[error("{text:?} is not a duration like 5s or 500ms")]
    Malformed {
        /// The argument.
        text: String,
    },
    /// Too large to represent.
    #[error("{text:?} is out of range")]
    OutOfRange {
        /// The argument.
        text: String,
    },
}

/// Parses `500ms`, `5s`, `1.5s`, `2m` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    match parse_span(text)? {
        duration if duration.is_zero() => Err(DurationError::Zero),
        duration => Ok(duration),
    }
}

/// A duration like 5s, 500ms or 1m; zero allowed.
fn parse_span(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        _ => {
            return Err(DurationError::Unit {
                unit: unit.to_owned(),
            });
        }
    };
    let number: f64 = number.parse().map_err(|_| DurationError::Malformed {
        text: text.to_owned(),
    })?;
    Duration::try_from_secs_f64(number * seconds_per_unit).map_err(|_| DurationError::OutOfRange {
        text: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn arguments_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn global_flags_go_anywhere() {
        let args = Args::try_parse_from([
            "dynamoctl",
            "get",
            "k",
            "--output",
            "json",
            "--endpoint",
            "n1:7400",
            "--r",
            "2",
        ])
        .expect("valid arguments");
        assert_eq!(args.output, Format::Json);
        assert_eq!(args.endpoint, "n1:7400");
        assert!(!args.via_endpoint);
        assert!(matches!(args.command, Command::Get { r: Some(2), .. }));
    }

    #[test]
    fn via_endpoint_is_a_global_switch() {
        let args = Args::try_parse_from(["dynamoctl", "put", "k", "v", "--via-endpoint"])
            .expect("valid arguments");
        assert!(args.via_endpoint);
        let args = Args::try_parse_from(["dynamoctl", "--via-endpoint", "status"])
            .expect("valid arguments");
        assert!(args.via_endpoint);
    }

    #[test]
    fn tls_flags_do_not_collide_with_a_put_key() {
        let args = Args::try_parse_from([
            "dynamoctl",
            "put",
            "the-key",
            "v",
            "--ca",
            "ca.pem",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
        ])
        .expect("valid arguments");
        assert_eq!(args.key, Some(PathBuf::from("k.pem")));
        assert_eq!(args.ca, Some(PathBuf::from("ca.pem")));
        assert!(matches!(&args.command, Command::Put { key, .. } if key == "the-key"));
        let error = Args::try_parse_from(["dynamoctl", "--key", "k.pem", "status"])
            .expect_err("--key needs --cert");
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn write_flags() {
        let args = Args::try_parse_from([
            "dynamoctl",
            "delete",
            "k",
            "--context",
            "AQID",
            "--w",
            "3",
            "--sync",
        ])
        .expect("valid arguments");
        let Command::Delete { write, .. } = args.command else {
            panic!("parsed {:?}", args.command);
        };
        assert_eq!(
            write.context.as_ref().map(|c| c.to_base64()).as_deref(),
            Some("AQID")
        );
        assert_eq!(
            write.options(),
            WriteOptions {
                w: Some(3),
                durability: Some(Durability::Sync)
            }
        );
    }

    #[test]
    fn usage_errors_exit_with_2() {
        for argv in [
            &["dynamoctl", "put", "k", "v", "--context", "not base64!"][..],
            &["dynamoctl", "get", "k", "--r", "0"],
            &["dynamoctl", "get", "k", "--timeout", "soon"],
            &["dynamoctl", "frobnicate"],
        ] {
            let err = Args::try_parse_from(argv).expect_err("invalid arguments");
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }
}

/// YCSB workload presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// 50% reads, 50% writes.
    A,
    /// 95% reads, 5% writes.
    B,
    /// 100% reads.
    C,
}

/// Options of `dynamoctl bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Keys loaded first and used by the run.
    #[arg(long, default_value_t = 10_000)]
    pub records: u64,
    /// Length of the measured run, for example 30s.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub duration: Duration,
    /// Unmeasured run before it; 0s skips it.
    #[arg(long, value_parser = parse_span, default_value = "5s")]
    pub warmup: Duration,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,
    /// Preset read/write mix.
    #[arg(long, value_enum, default_value_t = Workload::A)]
    pub workload: Workload,
    /// Share of reads (0.0 to 1.0); overrides the preset.
    #[arg(long)]
    pub read_proportion: Option<f64>,
    /// Key popularity.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,
    /// Open loop: this many operations per second, latency measured from
    /// each operation's intended start.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Read quorum override.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub r: Option<u32>,
    /// Write quorum override.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub w: Option<u32>,
    /// Do not load the records (an earlier run did).
    #[arg(long)]
    pub skip_load: bool,
    /// Replicas fsync each write before acknowledging it.
    #[arg(long)]
    pub sync: bool,
}
