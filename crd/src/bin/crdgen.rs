//! Prints the DynamoCluster CustomResourceDefinition as YAML.

use dynamo_crd::{CustomResourceExt, DynamoCluster};

fn main() {
    print!(
        "{}",
        serde_yaml::to_string(&DynamoCluster::crd()).expect("a CRD serializes to YAML")
    );
}
