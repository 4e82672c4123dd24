//! Errors of `dynamoctl` and the exit code of every outcome.

use std::process::ExitCode;

use dynamo_client::Error;

/// How `dynamoctl` ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The command did what was asked.
    Ok = 0,
    /// Any error without a more specific code.
    Failure = 1,
    /// The command line was wrong (clap uses 2 as well).
    Usage = 2,
    /// The key has no live sibling.
    NotFound = 3,
    /// The cluster could not serve the request: unreachable, timed out, or
    /// too few replicas.
    Unavailable = 4,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Why a `dynamoctl` command failed; printed as `error: <this>`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An argument clap could not check by itself was wrong.
    #[error("{message}")]
    Usage {
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A value cannot be printed as text.
    #[error("the value is not valid UTF-8; use --base64 to print it")]
    NotUtf8,
    /// No replica was reachable at its ring address, though the endpoint
    /// answers: the ring names addresses only the cluster reaches.
    #[error(
        "no replica of the key is reachable at its ring address, though {endpoint} answers \
         ({source}); add --via-endpoint (or set DYNAMO_VIA_ENDPOINT=true) to send every \
         request through {endpoint}"
    )]
    ViaEndpointNeeded {
        /// The endpoint that answers.
        endpoint: String,
        /// The failure of the last replica tried.
        source: Box<Error>,
    },
    /// The client library failed.
    #[error(transparent)]
    Client(Error),
}

impl From<Error> for CliError {
    /// Keeps the library's error, except that unreachable replicas behind
    /// an answering endpoint name the flag that helps.
    fn from(err: Error) -> Self {
        match err {
            Error::ReplicasUnreachable { endpoint, source } => {
                Self::ViaEndpointNeeded { endpoint, source }
            }
            err => Self::Client(err),
        }
    }
}

impl CliError {
    /// The exit code this error ends `dynamoctl` with.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Usage { .. } => Exit::Usage,
            Self::NotUtf8 | Self::File { .. } => Exit::Failure,
            Self::ViaEndpointNeeded { .. } => Exit::Unavailable,
            Self::Client(err) => match err {
                Error::BadContext { .. } | Error::InvalidAddress { .. } => Exit::Usage,
                Error::Unavailable { .. }
                | Error::Timeout { .. }
                | Error::Transport { .. }
                | Error::ReplicasUnreachable { .. } => Exit::Unavailable,
                Error::InvalidArgument { .. }
                | Error::InvalidRing { .. }
                | Error::Status { .. } => Exit::Failure,
                // `Error` is non-exhaustive; anything new is a plain failure.
                _ => Exit::Failure,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit_of(err: Error) -> Exit {
        CliError::from(err).exit()
    }

    #[test]
    fn unavailable_family_exits_with_4() {
        let address = || "n1:7400".to_owned();
        let message = || "too few replicas".to_owned();
        assert_eq!(
            exit_of(Error::Unavailable {
                address: address(),
                message: message()
            }),
            Exit::Unavailable
        );
        assert_eq!(
            exit_of(Error::Timeout {
                address: address(),
                message: message()
            }),
            Exit::Unavailable
        );
        let source = tonic::Status::from_error("connection refused".into());
        assert_eq!(
            exit_of(Error::Transport {
                address: address(),
                source
            }),
            Exit::Unavailable
        );
    }

    #[test]
    fn unreachable_replicas_name_the_flag() {
        let source = tonic::Status::from_error("dns error".into());
        let err = CliError::from(Error::ReplicasUnreachable {
            endpoint: "127.0.0.1:7400".into(),
            source: Box::new(Error::Transport {
                address: "demo-0.demo-peers.ns.svc:7400".into(),
                source,
            }),
        });
        assert_eq!(err.exit(), Exit::Unavailable);
        let text = err.to_string();
        assert!(text.contains("--via-endpoint"), "{text}");
        assert!(text.contains("demo-0.demo-peers.ns.svc:7400"), "{text}");
        assert!(!text.contains("Routing::"), "{text}");
    }

    #[test]
    fn usage_errors_exit_with_2() {
        assert_eq!(
            CliError::Usage {
                message: "bad".into()
            }
            .exit(),
            Exit::Usage
        );
        assert_eq!(
            exit_of(Error::BadContext {
                message: "bad".into()
            }),
            Exit::Usage
        );
    }

    #[test]
    fn other_errors_exit_with_1() {
        assert_eq!(CliError::NotUtf8.exit(), Exit::Failure);
        assert_eq!(
            exit_of(Error::InvalidArgument {
                message: "key too long".into()
            }),
            Exit::Failure
        );
        let status = tonic::Status::internal("disk full");
        assert_eq!(
            exit_of(Error::Status {
                address: "n1:7400".into(),
                status
            }),
            Exit::Failure
        );
    }

    #[test]
    fn codes_are_stable() {
        let codes = [
            Exit::Ok,
            Exit::Failure,
            Exit::Usage,
            Exit::NotFound,
            Exit::Unavailable,
        ]
        .map(|e| e as u8);
        assert_eq!(codes, [0, 1, 2, 3, 4]);
    }
}
