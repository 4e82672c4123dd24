//! Compiles the slice of etcd's v3 API the etcd backend uses, with a
//! vendored protoc (as proto/build.rs does), so that the build needs no
//! PROTOC from the environment.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => path.into(),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.bytes(["."]);
    let files = ["proto/etcdserverpb/rpc.proto", "proto/mvccpb/kv.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    tonic_prost_build::configure()
        .build_server(false)
        .compile_with_config(config, &files, &["proto"])?;
    Ok(())
}
