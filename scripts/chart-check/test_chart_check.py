"""Tests of the chart check: it passes on the repository and fails, naming
the problem, on deliberately broken copies of it.

Run by .ci/chart-check, which sets HELM, CRDGEN_OUTPUT and CARGO_METADATA:
    python -m unittest discover -s scripts/chart-check -p 'test_*.py'
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import unittest
from pathlib import Path

import chart_check

REPO = Path(__file__).resolve().parents[2]
# What a copy needs for the check: the chart, examples, README, Dockerfile
# and the workspace manifest (for the Rust version).
COPIED = ["charts", "examples", "README.md", "Dockerfile", ".dockerignore", "Cargo.toml"]
# Two versions keep the tests quick; the CI check itself uses all of them.
KUBE_VERSIONS = "1.28,1.37"


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise unittest.SkipTest(f"{name} is not set; run the tests through .ci/chart-check")
    return value


class BrokenCopyTest(unittest.TestCase):
    """Each test copies the repository's artifacts, breaks one thing and runs
    the whole check on the copy."""

    def setUp(self) -> None:
        self.helm = required_env("HELM")
        self.crdgen_output = Path(required_env("CRDGEN_OUTPUT"))
        self.cargo_metadata = Path(required_env("CARGO_METADATA"))
        self.tmp = Path(tempfile.mkdtemp(prefix="chart-check-"))
        self.addCleanup(shutil.rmtree, self.tmp)
        for name in COPIED:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, self.tmp / name)
            else:
                shutil.copy2(source, self.tmp / name)

    def edit(self, relative: str, old: str, new: str) -> None:
        """Replaces `old` (which must occur) by `new` in a file of the copy."""
        path = self.tmp / relative
        text = path.read_text()
        self.assertTrue(old in text, f"{relative} no longer contains {old!r}; update the test")
        path.write_text(text.replace(old, new, 1))

    def run_check(self, crdgen_output: Path | None = None) -> tuple[int, str]:
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            code = chart_check.main(
                [
                    "--repo",
                    str(self.tmp),
                    "--helm",
                    self.helm,
                    "--crdgen-output",
                    str(crdgen_output or self.crdgen_output),
                    "--cargo-metadata",
                    str(self.cargo_metadata),
                    "--kube-versions",
                    KUBE_VERSIONS,
                ]
            )
        return code, output.getvalue()

    def assert_fails_with(self, *patterns: str) -> str:
        code, output = self.run_check()
        self.assertEqual(code, 1, f"the check passed on a broken copy:\n{output}")
        for pattern in patterns:
            self.assertRegex(output, pattern)
        return output

    # -- the baseline ---------------------------------------------------------

    def test_unbroken_copy_passes(self) -> None:
        code, output = self.run_check()
        self.assertEqual(code, 0, output)
        self.assertIn("chart check passed", output)

    # -- the three failures the chart check exists for -----------------------

    def test_broken_template_fails_lint_and_render(self) -> None:
        self.edit("charts/dynamo/templates/deployment.yaml", "{{ .Values.replicaCount }}", "{{ .Values.replicaCount ")
        self.assert_fails_with(
            r"FAIL helm lint --strict \(default values\): (.*\n)*\[ERROR\] templates/: parse error at \(dynamo/templates/deployment\.yaml:\d+\)",
            r"FAIL render with default values: helm template failed:\nError: parse error at \(dynamo/templates/deployment\.yaml:\d+\)",
        )

    def test_wrong_value_type_fails_with_the_key(self) -> None:
        self.edit("charts/dynamo/values.yaml", "replicaCount: 1", 'replicaCount: "1"')
        self.assert_fails_with(r"FAIL render with default values: .*\n(.*\n)*.*at '/replicaCount': got string, want integer")

    def test_notes_without_via_endpoint_after_a_port_forward_fail(self) -> None:
        self.edit("charts/dynamo/templates/NOTES.txt", "dynamoctl --via-endpoint put", "dynamoctl put")
        self.assert_fails_with(
            r"FAIL charts/dynamo/templates/NOTES\.txt: `dynamoctl put cart apples` follows a port-forward but lacks --via-endpoint"
        )

    def test_operator_pod_labels_that_miss_the_operator_pods(self) -> None:
        self.edit(
            "charts/dynamo/templates/deployment.yaml",
            '{{ include "dynamo.selectorLabelList" . | quote }}',
            '"app.kubernetes.io/component=operator"',
        )
        self.assert_fails_with(r"FAIL render with default values: DYNAMO_OPERATOR_POD_LABELS 'app.kubernetes.io/component=operator' is not the Deployment's selector")

    def test_role_without_network_policies(self) -> None:
        self.edit("charts/dynamo/templates/rbac.yaml", 'resources: ["networkpolicies"]', 'resources: ["ingresses"]')
        self.assert_fails_with(
            r"FAIL render with default values: ClusterRole/dynamo-operator lacks \['create', 'delete', 'get', 'list', 'patch', 'watch'\] on networking\.k8s\.io/networkpolicies",
            r"FAIL render with .*namespaced.*: Role/dynamo-operator lacks .* on networking\.k8s\.io/networkpolicies",
        )

    def test_crd_edited_by_hand_is_drift(self) -> None:
        self.edit(
            "charts/dynamo/crds/dynamoclusters.dynamokv.io.yaml",
            "description: Desired number of nodes",
            "description: Number of nodes",
        )
        self.assert_fails_with(
            r"FAIL charts/dynamo/crds/dynamoclusters\.dynamokv\.io\.yaml: differs from the CRD that `crdgen` prints",
            r"\n-    - description: Desired number of nodes\n\+    - description: Number of nodes",
            r"scripts/chart-check/update-crd",
        )

    def test_crd_types_changed_without_regenerating_is_drift(self) -> None:
        changed = self.tmp / "crdgen-output.yaml"
        text = self.crdgen_output.read_text()
        # The spec's first property, so the new one lands among the spec's.
        self.assertIn("              affinity:\n", text)
        changed.write_text(
            text.replace(
                "              affinity:\n",
                "              compression:\n                type: string\n              affinity:\n",
                1,
            )
        )
        code, output = self.run_check(crdgen_output=changed)
        self.assertEqual(code, 1, output)
        self.assertRegex(output, r"differs from the CRD that `crdgen` prints")
        self.assertRegex(output, r"\n-              compression:")

    # -- more ways to break things -------------------------------------------

    def test_unknown_field_in_rendered_object(self) -> None:
        self.edit(
            "charts/dynamo/templates/deployment.yaml",
            "      enableServiceLinks: false",
            "      enableServiceLinks: false\n      hostNetworking: true",
        )
        self.assert_fails_with(
            r"Deployment/dynamo-operator: invalid for Kubernetes 1\.28: spec\.template\.spec: .*'hostNetworking' was unexpected"
        )

    def test_removed_api_version_is_an_error(self) -> None:
        self.edit("charts/dynamo/templates/service.yaml", "apiVersion: v1", "apiVersion: v1beta9")
        self.assert_fails_with(r"Service/dynamo-operator-metrics: Couldn't find schema for kind Service with api version v1beta9")

    def test_unknown_custom_kind_is_an_error(self) -> None:
        self.edit("charts/dynamo/templates/servicemonitor.yaml", "kind: ServiceMonitor", "kind: PodMonitor")
        self.assert_fails_with(r"PodMonitor/dynamo-operator: no schema for monitoring\.coreos\.com/v1 PodMonitor")

    def test_example_with_wrong_type(self) -> None:
        self.edit("examples/dynamocluster-n5.yaml", "replicas: 5", 'replicas: "five"')
        self.assert_fails_with(
            r"examples/dynamocluster-n5\.yaml: DynamoCluster/five: does not match the DynamoCluster CRD: spec\.replicas: 'five' is not of type 'integer'"
        )

    def test_example_with_misspelt_field(self) -> None:
        self.edit("examples/dynamocluster-zones.yaml", "topologyKey:", "topologykey:")
        self.assert_fails_with(r"DynamoCluster/zoned: does not match the DynamoCluster CRD: spec\.zones: .*'topologykey' was unexpected")

    def test_unquoted_n_is_read_as_false(self) -> None:
        self.edit("examples/dynamocluster-n5.yaml", "factor: 5", "n: 5")
        self.assert_fails_with(r"DynamoCluster/five: keys spec\.replication\.<false> are read as booleans by kubectl and Helm")

    def test_values_schema_that_accepts_anything(self) -> None:
        self.edit("charts/dynamo/values.schema.json", '"additionalProperties": false,\n  "definitions"', '"definitions"')
        self.assert_fails_with(r"--set watchNamespce=team-a was accepted; the schema must reject it")

    def test_dockerfile_copying_another_binary(self) -> None:
        self.edit(
            "Dockerfile",
            "COPY --from=build /src/target/release/dynamo-operator /usr/local/bin/dynamo-operator",
            "COPY --from=build /src/target/release/dynamoctl /usr/local/bin/dynamo-operator",
        )
        self.assert_fails_with(r"Dockerfile stage `operator`: must copy exactly \[\['/src/target/release/dynamo-operator', '/usr/local/bin/dynamo-operator'\]\]")

    def test_dockerfile_building_a_binary_the_workspace_lacks(self) -> None:
        self.edit("Dockerfile", "--bin dynamo-node --bin", "--bin dynamo-server --bin")
        self.assert_fails_with(
            r"Dockerfile: builds `dynamo-server`, which is not a binary of the workspace",
            r"the build stage does not build `dynamo-node`",
        )

    def test_dockerfile_running_as_root(self) -> None:
        self.edit("Dockerfile", "USER 65532:65532\n# gRPC", "# gRPC")
        self.assert_fails_with(r"Dockerfile stage `node`: must run as USER 65532:65532 \(non-root\), runs as None")

    def test_chart_version_out_of_step_with_the_workspace(self) -> None:
        self.edit("charts/dynamo/Chart.yaml", 'appVersion: "0.1.0"', 'appVersion: "0.2.0"')
        self.assert_fails_with(r"Chart\.yaml: appVersion 0\.2\.0 differs from the workspace version 0\.1\.0")

    def test_readme_applying_a_missing_file(self) -> None:
        self.edit("README.md", "kubectl apply -f examples/dynamocluster.yaml", "kubectl apply -f examples/cluster.yaml")
        self.assert_fails_with(r"README\.md: `kubectl apply -f examples/cluster\.yaml` .*applies examples/cluster\.yaml, which does not exist")

    def test_readme_helm_install_with_a_bad_value(self) -> None:
        self.edit("README.md", "--set watchNamespace=", "--set replicaCount=two --set watchNamespace=")
        self.assert_fails_with(r"README\.md: `helm install .*` fails \(run with --dry-run=client\):\n(.*\n)*.*/replicaCount")


class QuotingTest(unittest.TestCase):
    """kube_safe_yaml quotes what YAML 1.1 would read as a boolean, and only that."""

    def test_quotes_keys_values_and_items(self) -> None:
        text = "n: 1\nname: N\nlist:\n- y\n- on: off\nnone: no\nnote: not\n"
        self.assertEqual(
            chart_check.kube_safe_yaml(text),
            '"n": 1\nname: "N"\nlist:\n- "y"\n- "on": "off"\nnone: "no"\nnote: not\n',
        )

    def test_loader_reads_bare_n_as_false(self) -> None:
        problems = chart_check.Problems()
        with contextlib.redirect_stderr(io.StringIO()):
            objects = chart_check.load_objects("kind: X\nspec:\n  n: 5\n", "test", problems)
        self.assertEqual(objects, [])
        self.assertIn("spec.<false>", problems.items[0])


if __name__ == "__main__":
    unittest.main()
