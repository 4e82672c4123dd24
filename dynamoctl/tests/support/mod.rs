//! What the dynamoctl tests share: the client library's mock cluster and a
//! runner of the built `dynamoctl`.

#![allow(dead_code, missing_docs)]

#[path = "../../../client/tests/support/mod.rs"]
mod mock;

pub use mock::*;

/// Runs the built `dynamoctl --endpoint ENDPOINT ARGS` with `env` set and
/// the routing variables of the calling environment removed.
pub async fn dynamoctl(
    endpoint: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_dynamoctl"))
        .env_remove("DYNAMO_ENDPOINT")
        .env_remove("DYNAMO_VIA_ENDPOINT")
        .envs(env.iter().copied())
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .output()
        .await
        .expect("run dynamoctl")
}
