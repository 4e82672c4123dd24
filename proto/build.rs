//! Compiles the protobuf definitions with a vendored protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => path.into(),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.bytes(["."]);
    let files = [
        "proto/dynamo/v1/types.proto",
        "proto/dynamo/v1/kv.proto",
        "proto/dynamo/v1/admin.proto",
        "proto/dynamo/v1/peer.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    tonic_prost_build::configure().compile_with_config(config, &files, &["proto"])?;
    Ok(())
}
