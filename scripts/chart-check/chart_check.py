#!/usr/bin/env python3
"""Offline check of DynamoKV's Kubernetes artifacts, run by .ci/chart-check.

It fails, naming the file and the field, when:
  * charts/dynamo/crds/ differs from what `crdgen` prints (CRD drift);
  * `helm lint --strict` finds a problem, with the default values or with any
    file in charts/dynamo/ci/;
  * a render fails (template error, a value of the wrong type, a `fail`);
  * a rendered object is not valid for a Kubernetes version from 1.28 to the
    newest known (strict schemas: unknown fields are errors), or has a kind
    nobody can check;
  * an example DynamoCluster (examples/ or the README) does not match the
    CRD's openAPIV3Schema;
  * a manifest or a `helm` / `kubectl apply` / `kubectl scale` command of the
    README does not work offline (helm commands run with --dry-run=client);
  * the Dockerfile does not build and copy exactly the workspace's
    `dynamo-node` and `dynamo-operator` binaries into non-root images with
    the names and tags the chart and the CRD use.

Usage: chart_check.py [--repo DIR] [--helm PATH] [--crdgen-output FILE]
                      [--cargo-metadata FILE] [--kube-versions 1.28,1.37]
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterable

import jsonschema
import yaml
from kubernetes_validate import utils as kube_validate

CHART = Path("charts/dynamo")
CRD_FILE = CHART / "crds" / "dynamoclusters.dynamokv.io.yaml"
CRDGEN_COMMAND = "cargo run -q -p dynamo-crd --bin crdgen"
IMAGE_REGISTRY = "ghcr.io/dynamokv"
# uid:gid of the images' user (distroless "nonroot"); the chart runs as it.
NON_ROOT = "65532:65532"
# Kubernetes versions every rendered object must be valid for: the oldest we
# support up to the newest the pinned kubernetes-validate knows.
OLDEST_KUBE = (1, 28)
# API groups whose kinds ship with Kubernetes. A kind of these groups without
# a schema is an error (a typo or a removed API), not a custom resource.
BUILTIN_GROUP = re.compile(r"^([a-z0-9-]*|[a-z0-9.-]*\.k8s\.io)$")
# Release name and namespace of the README's install; the check renders the
# chart the same way.
DEFAULT_RELEASE = ("dynamo", "dynamo-system")


class Problems:
    """Collects failures so that one run reports all of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")
        print(f"FAIL {where}: {message}", file=sys.stderr)

    def step(self, name: str, check: Callable[[], None]) -> None:
        before = len(self.items)
        check()
        if len(self.items) == before:
            print(f"ok   {name}")


# ----------------------------------------------------------------------------
# Loading YAML


class KubeLoader(yaml.SafeLoader):
    """Reads YAML as kubectl and Helm do (sigs.k8s.io/yaml, YAML 1.1).

    Unlike PyYAML they also read a bare y, Y, n or N as a boolean, so that
    an old manifest's `replication: {n: 5}` reaches the API server as `{"false": 5}`. Loading
    manifests this way makes the check see what the cluster would see.
    """

    BOOLS = {**yaml.SafeLoader.bool_values, "y": True, "n": False}

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> bool:
        return self.BOOLS[self.construct_scalar(node).lower()]


KubeLoader.add_constructor("tag:yaml.org,2002:bool", KubeLoader.construct_yaml_bool)
for _first in "yYnN":
    KubeLoader.yaml_implicit_resolvers.setdefault(_first, [])
KubeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))


def boolean_keys(node: Any, path: str = "") -> list[str]:
    """Paths of mapping keys that YAML 1.1 read as booleans (unquoted y/n/yes/no/on/off)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            shown = f"<{str(key).lower()}>" if isinstance(key, bool) else str(key)
            here = f"{path}.{shown}" if path else shown
            if isinstance(key, bool):
                found.append(here)
            found += boolean_keys(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += boolean_keys(value, f"{path}[{index}]")
    return found


def load_objects(text: str, where: str, problems: Problems) -> list[dict]:
    """Every non-empty YAML document of `text`, each a mapping."""
    try:
        docs = [doc for doc in yaml.load_all(text, Loader=KubeLoader) if doc is not None]
    except yaml.YAMLError as error:
        problems.add(where, f"not valid YAML: {error}")
        return []
    objects = []
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict):
            problems.add(where, f"document {index + 1} is a {type(doc).__name__}, not an object")
            continue
        keys = boolean_keys(doc)
        if keys:
            problems.add(
                f"{where}: {name_of(doc)}",
                f"keys {', '.join(keys)} are read as booleans by kubectl and Helm (YAML 1.1:"
                ' a bare n, no or off is false, y, yes or on is true); quote them, for example `"n": 5`',
            )
            continue
        objects.append(doc)
    return objects


def name_of(obj: dict) -> str:
    metadata = obj.get("metadata") or {}
    return f"{obj.get('kind', '?')}/{metadata.get('name', '?')}"


# ----------------------------------------------------------------------------
# The CRD as JSON Schema


def crd_to_json_schema(node: Any, root: bool = True) -> Any:
    """The CRD's openAPIV3Schema as a Draft 4 JSON Schema.

    Kubernetes' structural-schema keys are translated: nullable allows null,
    int-or-string allows both, and objects without preserve-unknown-fields or
    additionalProperties reject unknown fields, as `kubectl apply` does with
    its default strict field validation. CEL rules are not evaluated here
    (crd/tests/cel.rs evaluates them).
    """
    if isinstance(node, list):
        return [crd_to_json_schema(item, False) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: crd_to_json_schema(value, False)
        for key, value in node.items()
        if not key.startswith("x-kubernetes-") and key not in ("nullable", "default")
    }
    if "properties" in node:
        # `properties` maps field names to schemas: translate the schemas only.
        out["properties"] = {
            field: crd_to_json_schema(schema, False) for field, schema in node["properties"].items()
        }
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = types + ["null"]
        if "enum" in out:
            out["enum"] = list(out["enum"]) + [None]
    if root:
        out["properties"].update(
            {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string", "minLength": 1}},
                },
            }
        )
        out["$schema"] = "http://json-schema.org/draft-04/schema#"
    return out


class CustomResource:
    """The DynamoCluster CRD: its identity and a validator for its objects."""

    def __init__(self, crd: dict) -> None:
        spec = crd["spec"]
        self.kind = spec["names"]["kind"]
        self.api_versions = {f"{spec['group']}/{version['name']}": version for version in spec["versions"]}
        self.validators = {
            api_version: jsonschema.Draft4Validator(
                crd_to_json_schema(version["schema"]["openAPIV3Schema"])
            )
            for api_version, version in self.api_versions.items()
        }

    def matches(self, obj: dict) -> bool:
        return obj.get("kind") == self.kind

    def errors(self, obj: dict) -> list[str]:
        validator = self.validators.get(obj.get("apiVersion"))
        if validator is None:
            return [f"apiVersion {obj.get('apiVersion')!r} is not served by the CRD ({', '.join(self.api_versions)})"]
        return [
            f"{'.'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message}"
            for error in sorted(validator.iter_errors(obj), key=lambda error: list(error.absolute_path))
        ]


# ServiceMonitor (monitoring.coreos.com/v1) has no schema offline. This is
# the subset of its fields the chart may render; anything else is a typo.
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"enum": ["monitoring.coreos.com/v1"]},
        "kind": {"enum": ["ServiceMonitor"]},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {"type": "object"},
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array"},
                            "metricRelabelings": {"type": "array"},
                        },
                    },
                },
            },
        },
    },
}


# ----------------------------------------------------------------------------
# Validating objects


def kube_versions(requested: str | None) -> list[str]:
    """Kubernetes minor versions to validate against, oldest first."""
    known = sorted({tuple(int(part) for part in v.split(".")[:2]) for v in kube_validate.all_versions()})
    if requested:
        wanted = [tuple(int(part) for part in v.split(".")) for v in requested.split(",")]
        missing = [w for w in wanted if w not in known]
        if missing:
            raise SystemExit(f"kubernetes-validate has no schemas for {missing}; it knows {known[0]} to {known[-1]}")
        known = wanted
    versions = [f"{major}.{minor}" for major, minor in known if (major, minor) >= OLDEST_KUBE]
    if not versions:
        raise SystemExit(f"kubernetes-validate knows no Kubernetes version from {OLDEST_KUBE} on")
    return versions


class Validator:
    """Validates objects: built-in kinds against Kubernetes' strict schemas
    for every version in `versions`, DynamoClusters against the CRD, and
    ServiceMonitors against the subset above."""

    def __init__(self, crd: CustomResource, versions: list[str], problems: Problems) -> None:
        self.crd = crd
        self.versions = versions
        self.problems = problems
        self.service_monitor = jsonschema.Draft7Validator(SERVICE_MONITOR_SCHEMA)

    def validate(self, obj: dict, where: str) -> None:
        label = f"{where}: {name_of(obj)}"
        api_version = obj.get("apiVersion")
        if not isinstance(api_version, str) or not isinstance(obj.get("kind"), str):
            self.problems.add(label, "apiVersion and kind must be strings")
            return
        if self.crd.matches(obj):
            for error in self.crd.errors(obj):
                self.problems.add(label, f"does not match the DynamoCluster CRD: {error}")
            return
        if obj["kind"] == "ServiceMonitor":
            for error in self.service_monitor.iter_errors(obj):
                path = ".".join(str(part) for part in error.absolute_path) or "(root)"
                self.problems.add(label, f"{path}: {error.message}")
            return
        group = api_version.rpartition("/")[0]
        if not BUILTIN_GROUP.match(group):
            self.problems.add(label, f"no schema for {api_version} {obj['kind']}: the check cannot validate it")
            return
        for version in self.versions:
            try:
                kube_validate.validate(obj, version, strict=True)
            except kube_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path) or "(root)"
                self.problems.add(label, f"invalid for Kubernetes {version}: {path}: {error.message}")
                return
            except kube_validate.SchemaNotFoundError as error:
                self.problems.add(label, f"{error.message} (a built-in API that does not exist in that version)")
                return


# ----------------------------------------------------------------------------
# Helm


class Helm:
    def __init__(self, binary: str) -> None:
        # Commands run inside the checked tree, so a relative path would break.
        self.binary = os.path.abspath(binary) if os.sep in binary else binary

    def run(self, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, *args], cwd=cwd, capture_output=True, text=True)


def helm_error(result: subprocess.CompletedProcess) -> str:
    text = (result.stderr.strip() or result.stdout.strip()).replace("\nUse --debug flag to render out invalid YAML", "")
    return text.strip() or f"exit code {result.returncode}"


def render(
    helm: Helm,
    repo: Path,
    where: str,
    problems: Problems,
    values: Iterable[Path] = (),
    sets: Iterable[str] = (),
) -> list[dict]:
    release, namespace = DEFAULT_RELEASE
    args = ["template", release, str(CHART), "--namespace", namespace]
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    result = helm.run(args, repo)
    if result.returncode != 0:
        problems.add(where, f"helm template failed:\n{helm_error(result)}")
        return []
    return load_objects(result.stdout, where, problems)


# ----------------------------------------------------------------------------
# Steps


# Plain scalars that YAML 1.1 (kubectl, Helm) reads as booleans and YAML 1.2
# (crdgen's serde_yaml) as strings: as a key, a value or a list item.
YAML11_BOOL = r"(?:y|Y|n|N|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)"
YAML11_BOOL_KEY = re.compile(rf"^([ \t]*(?:- )*)({YAML11_BOOL})(:(?:[ \t]|$))", re.M)
YAML11_BOOL_VALUE = re.compile(
    rf"""^([ \t]*(?:- )*(?:(?:"[^"\n]*"|[^ \t#:'"-][^:#\n]*):[ \t]+)?)({YAML11_BOOL})([ \t]*)$""", re.M
)


def kube_safe_yaml(text: str) -> str:
    """crdgen's YAML with keys such as `n` quoted.

    crdgen writes YAML 1.2, where `n:` is the string "n"; kubectl and Helm
    read YAML 1.1, where it is the boolean false, which would turn the
    printer column `N` (or any property named `n`) into
    false. Quoting changes nothing for a
    YAML 1.2 reader (checked by the caller).
    """
    text = YAML11_BOOL_KEY.sub(r'\1"\2"\3', text)
    return YAML11_BOOL_VALUE.sub(r'\1"\2"\3', text)


def crd_file_text(crdgen_output: str) -> str:
    """The exact content of charts/dynamo/crds/ for a crdgen output."""
    header = (
        "# The DynamoCluster CustomResourceDefinition: the output of\n"
        "# `cargo run -p dynamo-crd --bin crdgen`, with keys that YAML 1.1 would read\n"
        '# as booleans quoted (such as `name: "N"`), as kubectl and Helm parse YAML 1.1.\n'
        "# Do not edit: regenerate with scripts/chart-check/update-crd. CI\n"
        "# (.ci/chart-check) fails when this file differs from crdgen's output.\n"
    )
    quoted = kube_safe_yaml(crdgen_output)
    if list(yaml.safe_load_all(quoted)) != list(yaml.safe_load_all(crdgen_output)):
        raise SystemExit("quoting YAML 1.1 boolean keys changed the CRD's meaning; fix kube_safe_yaml")
    return header + quoted


def check_crd_drift(repo: Path, crdgen_output: str, problems: Problems) -> None:
    path = repo / CRD_FILE
    try:
        text = path.read_text()
    except OSError as error:
        problems.add(str(CRD_FILE), f"cannot read: {error}")
        return
    expected = crd_file_text(crdgen_output)
    if text != expected:
        diff = list(
            difflib.unified_diff(
                expected.splitlines(),
                text.splitlines(),
                fromfile="crdgen",
                tofile=str(CRD_FILE),
                lineterm="",
                n=1,
            )
        )
        shown = "\n".join(diff[:40]) + ("\n..." if len(diff) > 40 else "")
        problems.add(
            str(CRD_FILE),
            "differs from the CRD that `crdgen` prints (the Rust types changed, or the file was edited);"
            f" regenerate it with scripts/chart-check/update-crd\n{shown}",
        )


def check_lint(helm: Helm, repo: Path, problems: Problems) -> None:
    scenarios: list[list[str]] = [[]]
    scenarios += [["--values", str(path.relative_to(repo))] for path in sorted((repo / CHART / "ci").glob("*.yaml"))]
    for scenario in scenarios:
        result = helm.run(["lint", "--strict", str(CHART), "--namespace", DEFAULT_RELEASE[1], *scenario], repo)
        if result.returncode != 0:
            label = "default values" if not scenario else scenario[1]
            problems.add(f"helm lint --strict ({label})", helm_error(result) + "\n" + result.stdout.strip())


def check_renders(helm: Helm, repo: Path, validator: Validator, problems: Problems) -> None:
    scenarios: list[tuple[str, list[Path]]] = [("default values", [])]
    scenarios += [(str(path.relative_to(repo)), [path]) for path in sorted((repo / CHART / "ci").glob("*.yaml"))]
    for label, values in scenarios:
        objects = render(helm, repo, f"render with {label}", problems, values=values)
        for obj in objects:
            validator.validate(obj, f"render with {label}")
        if objects:
            check_chart_invariants(objects, f"render with {label}", problems)


def check_chart_invariants(objects: list[dict], where: str, problems: Problems) -> None:
    """What the operator's contract asks of the rendered chart."""
    deployments = [obj for obj in objects if obj["kind"] == "Deployment"]
    if len(deployments) != 1:
        problems.add(where, f"expected one Deployment (the operator), got {len(deployments)}")
        return
    pod = deployments[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if container.get("command") != ["/usr/local/bin/dynamo-operator"] or container.get("args", [None])[0] != "run":
        problems.add(where, "the operator container must run `/usr/local/bin/dynamo-operator run`")
    ports = {port.get("name"): port for port in container.get("ports", [])}
    if "metrics" not in ports:
        problems.add(where, "the operator container has no port named `metrics`")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (container.get(probe) or {}).get("httpGet") or {}
        if get.get("path") != path or get.get("port") != "metrics":
            problems.add(where, f"{probe} must GET {path} on port `metrics`")
    context = {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}
    if context.get("runAsNonRoot") is not True or context.get("readOnlyRootFilesystem") is not True:
        problems.add(where, "the operator must run as non-root with a read-only root filesystem")
    env = {item["name"]: item for item in container.get("env", [])}
    for needed in ("POD_NAME", "POD_NAMESPACE", "RUST_LOG", "DYNAMO_OPERATOR_POD_LABELS"):
        if needed not in env:
            problems.add(where, f"the operator container has no {needed} variable")
    # The storage pods' NetworkPolicies admit the operator's pods by these
    # labels: they must select the Deployment's own pods.
    selector = deployments[0]["spec"]["selector"].get("matchLabels") or {}
    pod_labels = deployments[0]["spec"]["template"]["metadata"].get("labels") or {}
    listed = env.get("DYNAMO_OPERATOR_POD_LABELS", {}).get("value") or ""
    pairs = dict(pair.split("=", 1) for pair in listed.split(",") if "=" in pair)
    if "DYNAMO_OPERATOR_POD_LABELS" in env and (pairs != selector or any(pod_labels.get(k) != v for k, v in pairs.items())):
        problems.add(where, f"DYNAMO_OPERATOR_POD_LABELS {listed!r} is not the Deployment's selector {selector}")
    check_operator_rules(objects, where, problems)
    kinds = {obj["kind"] for obj in objects}
    # A namespaced install has one cluster-wide role: the Node reader.
    node_reader = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]
    wide = [obj for obj in objects if obj["kind"] == "ClusterRole" and obj.get("rules") != node_reader]
    if wide and any(obj["kind"] == "Role" and "leader" not in obj["metadata"]["name"] for obj in objects):
        problems.add(where, "both cluster-wide and namespaced operator roles rendered")
    for obj in objects:
        if obj["kind"] in ("ClusterRole", "Role"):
            for rule in obj.get("rules", []):
                if "*" in rule.get("verbs", []) or "*" in rule.get("resources", []) or "*" in rule.get("apiGroups", []):
                    problems.add(where, f"{name_of(obj)} grants a wildcard: {rule}")


# What the operator applies (server-side apply creates through patch),
# watches as owned objects and deletes: (API group, resource).
OWNED_RESOURCES = [
    ("apps", "statefulsets"),
    ("", "services"),
    ("", "configmaps"),
    ("policy", "poddisruptionbudgets"),
    ("networking.k8s.io", "networkpolicies"),
]
OWNED_VERBS = {"get", "list", "watch", "create", "patch", "delete"}


def check_operator_rules(objects: list[dict], where: str, problems: Problems) -> None:
    """The operator's role grants every verb it uses on each owned kind."""
    roles = [obj for obj in objects if obj["kind"] in ("ClusterRole", "Role")
             and any(rule.get("resources") == ["dynamoclusters"] for rule in obj.get("rules", []))]
    if len(roles) != 1:
        problems.add(where, f"expected one operator role (the one granting dynamoclusters), got {len(roles)}")
        return
    for group, resource in OWNED_RESOURCES:
        granted = set()
        for rule in roles[0].get("rules", []):
            if group in rule.get("apiGroups", []) and resource in rule.get("resources", []):
                granted.update(rule.get("verbs", []))
        if not OWNED_VERBS <= granted:
            problems.add(where, f"{name_of(roles[0])} lacks {sorted(OWNED_VERBS - granted)} on {group or 'core'}/{resource}")


def check_values_rejected(helm: Helm, repo: Path, problems: Problems) -> None:
    """The values schema turns wrong values into an error naming the key."""
    cases = [
        (["replicaCount=two"], "/replicaCount"),
        (["watchNamespce=team-a"], "watchNamespce"),
        (["logging.format=yaml"], "/logging/format"),
        # Clusters are not part of the release (a helm uninstall would remove
        # the operator before the cluster's finalizer ran).
        (["cluster.enabled=true"], "cluster"),
    ]
    for sets, expected in cases:
        release, namespace = DEFAULT_RELEASE
        args = ["template", release, str(CHART), "--namespace", namespace]
        for item in sets:
            args += ["--set", item]
        result = helm.run(args, repo)
        if result.returncode == 0:
            problems.add("values.schema.json", f"--set {' '.join(sets)} was accepted; the schema must reject it")
        elif expected not in helm_error(result):
            problems.add("values.schema.json", f"--set {' '.join(sets)} failed without naming {expected}: {helm_error(result)}")


def example_files(repo: Path) -> list[Path]:
    return sorted((repo / "examples").glob("*.yaml"))


def check_examples(repo: Path, validator: Validator, problems: Problems) -> None:
    files = example_files(repo)
    if not files:
        problems.add("examples/", "no example manifests found")
    for path in files:
        where = str(path.relative_to(repo))
        for obj in load_objects(path.read_text(), where, problems):
            validator.validate(obj, where)


# The README's fenced blocks: ```yaml manifests and ```sh commands.
FENCE = re.compile(r"^```([a-z]*)[^\n]*\n(.*?)^```", re.S | re.M)


def readme_blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def shell_commands(block: str) -> list[list[str]]:
    """The commands of a shell block, one per logical line, comments dropped."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        # `a && b` and `a; b` hold two commands.
        current: list[str] = []
        for word in words + ["&&"]:
            if word in ("&&", ";", "||", "|"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(word)
    return commands


def check_readme(helm: Helm, repo: Path, validator: Validator, problems: Problems) -> list[str]:
    """Validates the README's manifests and runs its helm commands offline.

    Returns the commands that need a live cluster and are not exercised here.
    """
    readme = repo / "README.md"
    text = readme.read_text()
    cluster_names = set()
    for index, block in enumerate(readme_blocks(text, "yaml")):
        where = f"README.md yaml block {index + 1}"
        objects = load_objects(block, where, problems)
        for obj in objects:
            validator.validate(obj, where)
            if validator.crd.matches(obj):
                cluster_names.add(obj["metadata"]["name"])
    commands = [command for block in readme_blocks(text, "sh") for command in shell_commands(block)]
    applied: list[tuple[str, str]] = []
    for command in commands:
        if command[:2] == ["kubectl", "apply"] and "-f" in command:
            target = command[command.index("-f") + 1]
            if target == "-":
                continue
            path = repo / target
            if not path.is_file():
                problems.add("README.md", f"`{shlex.join(command)}` applies {target}, which does not exist")
                continue
            for obj in load_objects(path.read_text(), target, problems):
                validator.validate(obj, f"README.md: {target}")
                if validator.crd.matches(obj):
                    cluster_names.add(obj["metadata"]["name"])
    not_exercised = []
    for command in commands:
        line = shlex.join(command)
        if command[0] == "helm" and len(command) > 1 and command[1] in ("install", "upgrade"):
            result = helm.run([*command[1:], "--dry-run=client"], repo)
            if result.returncode != 0:
                problems.add("README.md", f"`{line}` fails (run with --dry-run=client):\n{helm_error(result)}")
        elif command[:2] == ["kubectl", "scale"]:
            targets = [word.split("/", 1)[1] for word in command if word.startswith(("dyc/", "dynamocluster/"))]
            for name in targets:
                if name not in cluster_names:
                    problems.add("README.md", f"`{line}` scales {name}, but the guide creates {sorted(cluster_names)}")
            if not targets:
                problems.add("README.md", f"`{line}` must name the cluster as dyc/NAME")
            not_exercised.append(line)
        elif command[:2] == ["kubectl", "apply"]:
            continue
        elif command[0] in ("kubectl", "helm"):
            not_exercised.append(line)
    return not_exercised


def check_port_forward_commands(repo: Path, problems: Problems) -> None:
    """After a `kubectl port-forward`, the ring's pod addresses do not resolve
    on the user's machine, so every dynamoctl command that follows it (in the
    chart's NOTES and in a README shell block) must pass `--via-endpoint`;
    without it dynamoctl exits with code 4."""
    texts = [("charts/dynamo/templates/NOTES.txt", (repo / "charts/dynamo/templates/NOTES.txt").read_text())]
    texts += [(f"README.md sh block {i + 1}", block) for i, block in enumerate(readme_blocks((repo / "README.md").read_text(), "sh"))]
    for where, text in texts:
        forwarded = False
        for line in text.splitlines():
            code = line.split("#", 1)[0]
            if "port-forward" in code:
                forwarded = True
            for command in code.split("&&"):
                words = command.split()
                if forwarded and words[:1] == ["dynamoctl"] and "--via-endpoint" not in words:
                    problems.add(where, f"`{command.strip()}` follows a port-forward but lacks --via-endpoint (it would exit with code 4)")


# ----------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line:
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def check_dockerfile(repo: Path, metadata: dict, crdgen_output: str, problems: Problems) -> None:
    where = "Dockerfile"
    path = repo / "Dockerfile"
    try:
        instructions = dockerfile_instructions(path.read_text())
    except OSError as error:
        problems.add(where, f"cannot read: {error}")
        return
    version = {package["name"]: package["version"] for package in metadata["packages"]}
    bins = {
        target["name"]: package["name"]
        for package in metadata["packages"]
        for target in package["targets"]
        if "bin" in target["kind"]
    }
    workspace_version = version.get("dynamo-operator")
    args = {}
    stages: dict[str, dict] = {}
    stage: dict | None = None
    for word, rest in instructions:
        if word == "ARG" and stage is None:
            name, _, value = rest.partition("=")
            args[name] = value
        elif word == "FROM":
            match = re.match(r"^(?:--platform=\S+\s+)?(\S+)\s+AS\s+(\S+)$", rest, re.I)
            if not match:
                problems.add(where, f"every stage needs a name: FROM {rest}")
                continue
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), match.group(1))
            stage = {"image": image, "run": [], "copy": [], "user": None, "entrypoint": None, "workdir": "/", "labels": []}
            stages[match.group(2).lower()] = stage
        elif stage is None:
            continue
        elif word == "WORKDIR":
            stage["workdir"] = rest
        elif word == "RUN":
            stage["run"].append(rest)
        elif word == "COPY":
            stage["copy"].append(rest.split())
        elif word == "USER":
            stage["user"] = rest
        elif word == "ENTRYPOINT":
            try:
                stage["entrypoint"] = json.loads(rest)
            except json.JSONDecodeError:
                problems.add(where, f"ENTRYPOINT must be in exec form (a JSON list): {rest}")
        elif word == "LABEL":
            stage["labels"].append(rest)

    build = stages.get("build")
    if build is None:
        problems.add(where, "no stage named `build`")
        return
    built = set()
    for command in build["run"]:
        if "cargo build" in command:
            words = shlex.split(command)
            if "--release" not in words or "--locked" not in words:
                problems.add(where, f"the build must use --release --locked: {command}")
            built |= {words[i + 1] for i, word in enumerate(words[:-1]) if word == "--bin"}
    for binary in sorted(built):
        if binary not in bins:
            problems.add(where, f"builds `{binary}`, which is not a binary of the workspace (it has {sorted(bins)})")
    release_dir = f"{build['workdir'].rstrip('/')}/target/release/"
    rust_version = (repo / "Cargo.toml").read_text()
    minimum = tomllib.loads(rust_version)["workspace"]["package"].get("rust-version")
    match = re.match(r"^(?:docker\.io/)?(?:library/)?rust:(\d+\.\d+)(?:\.\d+)?-(?:slim-)?(\w+)$", build["image"])
    if not match:
        problems.add(where, f"the build stage must use an official rust:X.Y-slim-<debian> image, not {build['image']}")
        debian = None
    else:
        debian = match.group(2)
        if minimum and tuple(map(int, match.group(1).split("."))) < tuple(map(int, minimum.split(".")[:2])):
            problems.add(where, f"rust {match.group(1)} is older than the workspace's rust-version {minimum}")

    # Stage -> (its entrypoint binary, every binary it copies).
    expected = {"node": ("dynamo-node", ["dynamo-node", "dynamoctl"]), "operator": ("dynamo-operator", ["dynamo-operator"])}
    for stage_name, (binary, binaries) in expected.items():
        label = f"{where} stage `{stage_name}`"
        stage = stages.get(stage_name)
        if stage is None:
            problems.add(where, f"no stage named `{stage_name}` (the {binary} image)")
            continue
        for name in binaries:
            if name not in bins:
                problems.add(label, f"the workspace has no binary `{name}`")
            if name not in built:
                problems.add(label, f"the build stage does not build `{name}` (`cargo build ... --bin {name}`)")
        wanted = [[release_dir + name, f"/usr/local/bin/{name}"] for name in binaries]
        copies = [words[-2:] for words in stage["copy"] if "--from=build" in words]
        if copies != wanted:
            problems.add(label, f"must copy exactly {wanted} (source, destination) from the build stage, copies {copies}")
        target = f"/usr/local/bin/{binary}"
        if stage["entrypoint"] != [target]:
            problems.add(label, f"ENTRYPOINT must be [\"{target}\"], is {stage['entrypoint']}")
        if stage["user"] != NON_ROOT:
            problems.add(label, f"must run as USER {NON_ROOT} (non-root), runs as {stage['user']}")
        runtime = stage["image"]
        if debian and not (
            runtime.startswith(f"debian:{debian}-slim")
            or runtime.startswith(f"gcr.io/distroless/cc-debian{ {'bookworm': 12, 'trixie': 13}.get(debian, '?') }")
        ):
            problems.add(label, f"runtime image {runtime} does not match the build's Debian {debian} (glibc)")
        labels = " ".join(stage["labels"])
        if f"org.opencontainers.image.version=" not in labels:
            problems.add(label, "has no org.opencontainers.image.version label")

    # The version the images are tagged with is the workspace's, and the
    # chart and the CRD default use the same names and tags.
    if args.get("VERSION") != workspace_version:
        problems.add(where, f"ARG VERSION={args.get('VERSION')} differs from the workspace version {workspace_version}")
    chart = yaml.load((repo / CHART / "Chart.yaml").read_text(), Loader=KubeLoader)
    if chart.get("appVersion") != workspace_version:
        problems.add("Chart.yaml", f"appVersion {chart.get('appVersion')} differs from the workspace version {workspace_version}")
    values = yaml.load((repo / CHART / "values.yaml").read_text(), Loader=KubeLoader)
    if values["image"]["repository"] != f"{IMAGE_REGISTRY}/dynamo-operator":
        problems.add("values.yaml", f"image.repository must be {IMAGE_REGISTRY}/dynamo-operator")
    node_image = f"{IMAGE_REGISTRY}/dynamo-node:{workspace_version}"
    if f"default: {node_image}\n" not in crdgen_output:
        problems.add("crd", f"the CRD's default spec.image is not {node_image}")
    ignore = repo / ".dockerignore"
    if not ignore.is_file() or not re.search(r"^/?target/?$", ignore.read_text(), re.M):
        problems.add(".dockerignore", "must exclude target/ (gigabytes of build output)")


# ----------------------------------------------------------------------------


def crdgen(repo: Path) -> str:
    result = subprocess.run(CRDGEN_COMMAND.split(), cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"`{CRDGEN_COMMAND}` failed:\n{result.stderr}")
    return result.stdout


def cargo_metadata(repo: Path) -> dict:
    result = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=repo, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"cargo metadata failed:\n{result.stderr}")
    return json.loads(result.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2], help="workspace root to check")
    parser.add_argument("--helm", default=os.environ.get("HELM", "helm"), help="helm binary (default $HELM or helm)")
    parser.add_argument("--crdgen-output", type=Path, help="file holding crdgen's output (default: run crdgen)")
    parser.add_argument("--cargo-metadata", type=Path, help="file holding `cargo metadata --no-deps` (default: run it)")
    parser.add_argument("--kube-versions", help="comma-separated Kubernetes versions (default: 1.28 to the newest known)")
    options = parser.parse_args(argv)

    repo = options.repo.resolve()
    helm = Helm(options.helm)
    crd_text = options.crdgen_output.read_text() if options.crdgen_output else crdgen(repo)
    metadata = json.loads(options.cargo_metadata.read_text()) if options.cargo_metadata else cargo_metadata(repo)
    versions = kube_versions(options.kube_versions)
    print(f"Kubernetes versions: {', '.join(versions)}")

    problems = Problems()
    crd_objects = load_objects(crd_file_text(crd_text), str(CRD_FILE), problems)
    if len(crd_objects) != 1:
        print(f"\nchart check failed: crdgen must print one CustomResourceDefinition", file=sys.stderr)
        return 1
    crd = CustomResource(crd_objects[0])
    validator = Validator(crd, versions, problems)
    problems.step("CRD in crds/ matches crdgen", lambda: check_crd_drift(repo, crd_text, problems))
    problems.step(
        "CRD is a valid CustomResourceDefinition",
        lambda: [validator.validate(obj, str(CRD_FILE)) for obj in crd_objects],
    )
    problems.step("helm lint --strict", lambda: check_lint(helm, repo, problems))
    problems.step("renders validate", lambda: check_renders(helm, repo, validator, problems))
    problems.step("values schema rejects wrong values", lambda: check_values_rejected(helm, repo, problems))
    problems.step("examples validate", lambda: check_examples(repo, validator, problems))
    not_exercised: list[str] = []
    problems.step("README manifests and commands", lambda: not_exercised.extend(check_readme(helm, repo, validator, problems)))
    problems.step("dynamoctl after a port-forward uses --via-endpoint", lambda: check_port_forward_commands(repo, problems))
    problems.step("Dockerfile builds the workspace's binaries", lambda: check_dockerfile(repo, metadata, crd_text, problems))
    if not_exercised:
        print("README commands that need a live cluster (not run here):")
        for line in not_exercised:
            print(f"  {line}")
    if problems.items:
        print(f"\nchart check failed: {len(problems.items)} problem(s), listed above", file=sys.stderr)
        return 1
    print("\nchart check passed")
    return 0




def write_crd(argv: list[str] | None = None) -> int:
    """Entry point of update-crd: writes crds/ from crdgen's output on stdin."""
    repo = Path(__file__).resolve().parents[2]
    (repo / CRD_FILE).write_text(crd_file_text(sys.stdin.read()))
    print(f"wrote {CRD_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(write_crd() if sys.argv[1:] == ["--write-crd"] else main())
