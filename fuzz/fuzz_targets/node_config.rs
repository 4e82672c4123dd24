//! The node's configuration file, parsed as `Config::from_file` does
//! (`toml::from_str` for `.toml`, `serde_yaml::from_str` otherwise; each
//! input is tried as both), then `Config::validate` and the initial ring
//! `start` builds from it; and a `--member` value (`parse_member`). A
//! configuration that validates survives its own YAML and TOML forms.

#![no_main]

use dynamo_fuzz::write_seeds;
use dynamo_node::Config;
use dynamo_node::config::parse_member;
use dynamo_node::ring::{Member, Ring};
use libfuzzer_sys::fuzz_target;

/// A file's configuration taken as far as a starting node takes it.
fn check(parsed: Result<Config, impl std::fmt::Display>) {
    let config = match parsed {
        Ok(config) => config,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    if config.validate().is_err() {
        return;
    }
    let yaml = serde_yaml::to_string(&config).expect("a config serializes to YAML");
    let back: Config = serde_yaml::from_str(&yaml).expect("a config's own YAML parses");
    assert_eq!(back, config, "YAML round trip");
    if let Ok(text) = toml::to_string(&config) {
        let back: Config = toml::from_str(&text).expect("a config's own TOML parses");
        assert_eq!(back, config, "TOML round trip");
    }
    let _ = config.metrics_url("127.0.0.1:9000".parse().expect("address"));
    let _ = config.background.failure_detector();
    let _ = Ring::initial(
        &config.cluster,
        config.initial_members(),
        config.partitions,
        config.replication,
    );
}

fuzz_target!(
    init: {
        let config = Config {
            id: "node-0".into(),
            members: (0..3)
                .map(|i| Member {
                    id: format!("node-{i}"),
                    address: format!("127.0.0.1:{}", 7400 + i),
                    zone: String::new(),
                    weight: 0,
                })
                .collect(),
            ..Config::default()
        };
        write_seeds([
            serde_yaml::to_string(&config).expect("yaml").into_bytes(),
            toml::to_string(&config).expect("toml").into_bytes(),
            b"node-1=10.0.0.2:7400@zone-b".to_vec(),
        ]);
    },
    |data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        check(toml::from_str::<Config>(text));
        check(serde_yaml::from_str::<Config>(text));
        if let Ok(member) = parse_member(text) {
            let flag = format!("{}={}@{}", member.id, member.address, member.zone);
            assert_eq!(parse_member(&flag).ok(), Some(member), "member round trip");
        }
    }
);
