//! The objects the operator makes for the example manifests and the
//! fixtures here, and the DynamoCluster CRD, validate against the
//! Kubernetes schemas offline, in strict mode (`validate_manifests.py`
//! with `kubernetes-validate`).
//!
//! The check runs when `python3 -c "import kubernetes_validate"` works. When
//! it does not, the test only renders, unless DYNAMO_REQUIRE_K8S_VALIDATE=1,
//! which makes it fail. DYNAMO_RENDER_DIR keeps the rendered files there.

use std::path::{Path, PathBuf};
use std::process::Command;

use dynamo_crd::{CustomResourceExt, DynamoCluster};
use dynamo_operator::k8s::network::OperatorPods;
use dynamo_operator::k8s::render::render;

fn manifests() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [root.join("../examples"), root.join("tests/fixtures")] {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|ext| ext == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn validator_available() -> bool {
    Command::new("python3")
        .args(["-c", "import kubernetes_validate"])
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
fn rendered_objects_and_the_crd_pass_strict_schema_validation() {
    let kept = std::env::var_os("DYNAMO_RENDER_DIR").map(PathBuf::from);
    let temporary = tempfile::tempdir().expect("tempdir");
    let out = kept.clone().unwrap_or_else(|| temporary.path().to_owned());
    std::fs::create_dir_all(&out).expect("output directory");

    let files = manifests();
    assert!(files.len() >= 4, "examples and fixtures: {files:?}");
    let operator = OperatorPods::parse(
        "dynamo-system",
        "app.kubernetes.io/name=dynamo,app.kubernetes.io/instance=dynamo,app.kubernetes.io/component=operator",
    )
    .expect("operator labels");
    let mut policies = 0;
    for file in &files {
        let manifest = std::fs::read_to_string(file).expect("read manifest");
        let objects = render(&manifest, "default", Some(&operator))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let kinds = ["Service", "ConfigMap", "StatefulSet", "PodDisruptionBudget"];
        for kind in kinds {
            assert!(
                objects.contains(&format!("kind: {kind}\n")),
                "{}: no {kind}",
                file.display()
            );
        }
        let wants_policy = DynamoCluster::from_yaml(&manifest)
            .expect("manifest parses")
            .spec
            .network_policy
            .is_some_and(|policy| policy.enabled);
        assert_eq!(
            objects.contains("kind: NetworkPolicy\n"),
            wants_policy,
            "{}: a NetworkPolicy exactly when spec.networkPolicy is enabled",
            file.display()
        );
        policies += usize::from(wants_policy);
        let name = file.file_name().expect("file name");
        std::fs::write(out.join(name), objects).expect("write rendered objects");
    }
    assert!(
        policies > 0,
        "no manifest renders a NetworkPolicy to validate"
    );
    let crd = dynamo_crd::to_kubernetes_yaml(&DynamoCluster::crd()).expect("CRD as YAML");
    std::fs::write(out.join("crd.yaml"), crd).expect("write CRD");

    if !validator_available() {
        assert!(
            std::env::var("DYNAMO_REQUIRE_K8S_VALIDATE").as_deref() != Ok("1"),
            "DYNAMO_REQUIRE_K8S_VALIDATE=1 but python3 cannot import kubernetes_validate: \
             run `pip install kubernetes-validate==1.37.0`"
        );
        eprintln!(
            "skipping the schema check: python3 cannot import kubernetes_validate \
             (pip install kubernetes-validate==1.37.0); rendered {} manifests",
            files.len()
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate_manifests.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(&out)
        .output()
        .expect("run validate_manifests.py");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schema validation failed:\n{report}"
    );
    assert!(report.contains(": 0 errors"), "{report}");
}
