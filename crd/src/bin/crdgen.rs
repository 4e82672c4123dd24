//! Prints the DynamoCluster CustomResourceDefinition as YAML that kubectl and
//! Helm read as intended.

use dynamo_crd::{CustomResourceExt, DynamoCluster, to_kubernetes_yaml};

fn main() {
    print!(
        "{}",
        to_kubernetes_yaml(&DynamoCluster::crd()).expect("a CRD serializes to YAML")
    );
}
