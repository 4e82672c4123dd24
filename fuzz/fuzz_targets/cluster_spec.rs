//! A `DynamoCluster` manifest as the local platform and the operator take
//! it: `DynamoCluster::from_yaml`, then `DynamoClusterSpec::validate` (what
//! the operator's `ValidatedCluster::new` runs) and `validate_update`; and a
//! bare spec through `serde_yaml`. A valid cluster survives its own
//! Kubernetes YAML.

#![no_main]

use dynamo_crd::{DynamoCluster, DynamoClusterSpec, to_kubernetes_yaml};
use dynamo_fuzz::write_seeds;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: write_seeds([
        include_bytes!("../../examples/dynamocluster.yaml").to_vec(),
        include_bytes!("../../examples/dynamocluster-n5.yaml").to_vec(),
        include_bytes!("../../examples/dynamocluster-zones.yaml").to_vec(),
    ]),
    |data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(spec) = serde_yaml::from_str::<DynamoClusterSpec>(text) {
            let _ = spec.validate();
        }
        let cluster = match DynamoCluster::from_yaml(text) {
            Ok(cluster) => cluster,
            Err(error) => {
                assert!(!error.to_string().is_empty());
                return;
            }
        };
        if cluster.spec.validate().is_err() {
            return;
        }
        assert_eq!(cluster.spec.validate_update(&cluster.spec), Ok(()));
        let yaml = to_kubernetes_yaml(&cluster).expect("a cluster serializes");
        let back = DynamoCluster::from_yaml(&yaml).expect("a cluster's own YAML parses");
        assert_eq!(back.spec, cluster.spec, "manifest round trip");
    }
);
