"""The Kubernetes end-to-end suite: the README's "Running on Kubernetes"
guide on a real kube-apiserver and kube-controller-manager (controlplane.py),
with the stand-in kubelet (kubelet.py) running storage pods as dynamo-node
processes and the operator running out of the cluster with a token of the
chart's ServiceAccount, so the chart's RBAC is what is tested.

Run it through scripts/e2e/run, which builds what it needs and enters a
private mount namespace whose /etc/hosts resolves the pods' DNS names.
Every wait is bounded; a failure prints the objects and logs that explain it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from controlplane import ControlPlane, free_port, kubeconfig  # noqa: E402
from kube import Timeout, spawn, stop, wait_for  # noqa: E402

NODES = [(f"e2e-{zone}-{i}", zone) for zone in ("zone-a", "zone-b", "zone-c") for i in (1, 2)]
RELEASE_NS = "dynamo-system"
TEAM_NS = "team-a"
TLS_NS = "secure"


class Failure(Exception):
    """A check of the suite failed."""


class Suite:
    def __init__(self, args: argparse.Namespace, root: Path):
        self.args = args
        self.root = root
        self.repo = args.repo
        self.cp = ControlPlane(root, args.kube_bin, args.etcd)
        self.kubelet: subprocess.Popen | None = None
        self.operators: dict[str, subprocess.Popen] = {}
        self.operator_config: dict[str, tuple[Path, list[str]]] = {}
        self.logs = root / "logs"
        self.passed: list[tuple[str, float]] = []
        self.watched: list[tuple[str, str]] = []
        self.operator_pod_labels = ""

    # --- tools -------------------------------------------------------------
    def run(self, argv: list[str], check: bool = True, timeout: float = 60, env: dict | None = None):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, **(env or {})})
        if check and result.returncode != 0:
            raise Failure(f"`{' '.join(argv)}` exited with {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60):
        return self.run([str(self.args.kube_bin / "kubectl"), f"--kubeconfig={self.cp.admin_kubeconfig}", *args],
                        check=check, timeout=timeout)

    def helm(self, *args: str, check: bool = True):
        return self.run([str(self.args.helm), f"--kubeconfig={self.cp.admin_kubeconfig}", *args], check=check,
                        timeout=120)

    def dynamoctl(self, *args: str, check: bool = True):
        env = {"DYNAMO_VIA_ENDPOINT": "", "DYNAMO_ENDPOINT": ""}
        return self.run([str(self.args.dynamoctl), *args], check=check, timeout=30, env=env)

    def get(self, kind: str, name: str, namespace: str = "default") -> dict | None:
        result = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def condition(self, cluster: dict | None, kind: str) -> dict:
        for condition in ((cluster or {}).get("status") or {}).get("conditions", []):
            if condition["type"] == kind:
                return condition
        return {}

    def check_alive(self) -> None:
        self.cp.check()
        if self.kubelet and self.kubelet.poll() is not None:
            raise Failure(f"the kubelet exited with {self.kubelet.returncode}")
        for name, process in self.operators.items():
            if process.poll() is not None:
                log = (self.logs / f"operator-{name}.log").read_text(errors="replace").splitlines()
                raise Failure(f"operator {name} exited with {process.returncode}:\n" + "\n".join(log[-15:]))

    def wait(self, what: str, check, timeout: float, interval: float = 1.0):
        """Polls `check` for at most `timeout` seconds; a component that died
        fails the wait at once."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            remaining = deadline - time.monotonic()
            try:
                return wait_for(what, check, min(remaining, 5.0), interval)
            except Timeout:
                if time.monotonic() >= deadline:
                    raise Timeout(f"timed out after {timeout:.0f}s waiting for {what}") from None

    # --- components -----------------------------------------------------------
    def start_kubelet(self) -> None:
        pki = self.cp.pki
        argv = [sys.executable, str(Path(__file__).parent / "kubelet.py"),
                f"--server={self.cp.server}", f"--ca={pki / 'ca.crt'}", f"--cert={pki / 'admin.crt'}",
                f"--key={pki / 'admin.key'}", f"--root={self.root / 'kubelet'}", f"--hosts={self.args.hosts}",
                f"--binary=/usr/local/bin/dynamo-node={self.args.node_binary}"]
        argv += [f"--node={name}={zone}" for name, zone in NODES]
        self.kubelet = spawn(argv, self.logs / "kubelet.log")
        self.wait("the stand-in kubelet's Nodes to be Ready", lambda: all(
            self.condition(self.get("node", name), "Ready").get("status") == "True" for name, _ in NODES), 60)

    def operator_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig with a token of the chart's ServiceAccount."""
        token = self.kubectl("create", "token", "dynamo-operator", "-n", namespace, "--duration=2h").stdout.strip()
        path = self.root / f"operator-{name}.kubeconfig"
        kubeconfig(path, self.cp.server, self.cp.pki / "ca.crt", {"token": token})
        return path

    def start_operator(self, name: str, namespace: str, extra: list[str] | None = None) -> None:
        config = self.operator_kubeconfig(namespace, name)
        args = [str(self.args.operator_binary), "run", f"--metrics-listen=127.0.0.1:{free_port()}",
                "--lease-name=dynamo-operator", f"--lease-namespace={namespace}", f"--identity={name}",
                *(extra or [])]
        self.operator_config[name] = (config, args)
        self.respawn_operator(name)

    def respawn_operator(self, name: str) -> None:
        config, args = self.operator_config[name]
        env = {"PATH": os.environ.get("PATH", ""), "KUBECONFIG": str(config),
               "RUST_LOG": "info,dynamo_operator=debug", "HOME": str(self.root)}
        self.operators[name] = spawn(args, self.logs / f"operator-{name}.log", env=env)

    def kill_operator(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.operators.pop(name)
        stop(process, grace=15, sig=sig)

    # --- checks ------------------------------------------------------------
    def cluster(self, name: str, namespace: str = "default") -> dict:
        cluster = self.get("dyc", name, namespace)
        if cluster is None:
            raise Failure(f"DynamoCluster {namespace}/{name} not found")
        return cluster

    def wait_available(self, name: str, namespace: str, replicas: int, timeout: float = 240) -> dict:
        self.watched.append((name, namespace))

        def available():
            cluster = self.get("dyc", name, namespace) or {}
            status = cluster.get("status") or {}
            members = status.get("members") or []
            return (self.condition(cluster, "Available").get("status") == "True"
                    and self.condition(cluster, "Progressing").get("status") == "False"
                    and status.get("readyReplicas") == replicas and len(members) == replicas
                    and all(m.get("state") == "Normal" for m in members)) and cluster
        return self.wait(f"DynamoCluster {namespace}/{name} Available with {replicas} members", available, timeout)

    def endpoint(self, name: str, namespace: str, index: int = 0) -> str:
        return f"{name}-{index}.{name}-peers.{namespace}.svc:7400"

    def put_keys(self, name: str, namespace: str, keys: range, via: bool) -> None:
        endpoint = self.endpoint(name, namespace)
        for i in keys:
            flags = ["--endpoint", endpoint] + (["--via-endpoint"] if via and i % 2 else [])
            self.dynamoctl(*flags, "put", f"key-{i}", f"value-{i}")

    def check_keys(self, name: str, namespace: str, keys: range, index: int = 0) -> None:
        self.check_keys_at(self.endpoint(name, namespace, index), keys)

    def check_keys_at(self, endpoint: str, keys: range) -> None:
        for i in keys:
            result = self.dynamoctl("--endpoint", endpoint, "--output", "json", "get", f"key-{i}", check=False)
            if result.returncode != 0 or f"value-{i}" not in result.stdout:
                raise Failure(f"key-{i} through {endpoint}: exit {result.returncode}: {result.stdout}{result.stderr}")

    # --- scenarios ---------------------------------------------------------------
    def step(self, title: str, body) -> None:
        started = time.monotonic()
        print(f"--- {title}", flush=True)
        body()
        took = time.monotonic() - started
        self.passed.append((title, took))
        print(f"ok  {title} ({took:.1f}s)", flush=True)

    def install(self) -> None:
        self.helm("install", "dynamo", str(self.repo / "charts/dynamo"), "--namespace", RELEASE_NS,
                  "--create-namespace")
        if not self.get("crd", "dynamoclusters.dynamokv.io", RELEASE_NS):
            raise Failure("helm install did not install the DynamoCluster CRD")
        # The labels the chart gives the operator, so the NetworkPolicy
        # admits its pods (this out-of-cluster operator is not one of them).
        deployment = self.get("deployment", "dynamo-operator", RELEASE_NS) or {}
        containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
        env = {item["name"]: item.get("value") for item in containers[0].get("env", [])}
        self.operator_pod_labels = env.get("DYNAMO_OPERATOR_POD_LABELS") or ""
        if "app.kubernetes.io/component=operator" not in self.operator_pod_labels.split(","):
            raise Failure(f"the chart's Deployment sets DYNAMO_OPERATOR_POD_LABELS={self.operator_pod_labels!r}")
        self.start_operator("op-a", RELEASE_NS, [f"--operator-pod-labels={self.operator_pod_labels}"])
        self.wait("op-a to take the Lease", lambda: (self.get("lease", "dynamo-operator", RELEASE_NS) or {})
                  .get("spec", {}).get("holderIdentity") == "op-a", 60)

    def create_demo(self) -> None:
        self.kubectl("apply", "-f", str(self.repo / "examples/dynamocluster.yaml"))
        self.wait_available("demo", "default", 3)
        self.put_keys("demo", "default", range(0, 30), via=True)
        self.check_keys("demo", "default", range(0, 30))
        # The client Service's address as kubectl shows it: the guide's port-forward target.
        if not self.get("service", "demo"):
            raise Failure("the client Service demo is missing")

    def network_policy(self) -> None:
        # The API server stores NetworkPolicies without a network plugin; none
        # enforces them here, so this checks the object, not the isolation.
        self.kubectl("patch", "dyc", "demo", "--type=merge", "-p", '{"spec":{"networkPolicy":{"enabled":true}}}')

        def owned():
            policy = self.get("networkpolicy", "demo-nodes") or {}
            owners = policy.get("metadata", {}).get("ownerReferences") or []
            return policy if any(o.get("kind") == "DynamoCluster" and o.get("name") == "demo" and o.get("controller")
                                 for o in owners) else None
        policy = self.wait("NetworkPolicy demo-nodes owned by DynamoCluster demo", owned, 60)
        trusted = policy["spec"]["ingress"][0]["from"]
        operator = [peer for peer in trusted
                    if (peer.get("namespaceSelector") or {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                    == RELEASE_NS]
        expected = dict(pair.split("=", 1) for pair in self.operator_pod_labels.split(","))
        if not operator or operator[0].get("podSelector", {}).get("matchLabels") != expected:
            raise Failure(f"the policy does not admit the operator's pods {expected} in {RELEASE_NS}: {trusted}")
        self.kubectl("patch", "dyc", "demo", "--type=merge", "-p", '{"spec":{"networkPolicy":{"enabled":false}}}')
        self.wait("NetworkPolicy demo-nodes to be deleted", lambda: self.get("networkpolicy", "demo-nodes") is None, 60)

    def scale_up_with_a_killed_operator(self) -> None:
        self.kubectl("scale", "dyc/demo", "--replicas=5")

        def mid_change():
            status = self.cluster("demo").get("status") or {}
            step = ((status.get("driver") or {}).get("driver") or {}).get("step", {}).get("step")
            return step in ("startMember", "stream")
        self.wait("the operator to start the join", mid_change, 60, interval=0.2)
        self.kill_operator("op-a")
        print("    operator op-a SIGKILLed mid-change", flush=True)
        self.respawn_operator("op-a")
        self.wait_available("demo", "default", 5, timeout=300)
        self.check_keys("demo", "default", range(0, 30), index=4)

    def second_replica_takes_over(self) -> None:
        self.start_operator("op-b", RELEASE_NS, [f"--operator-pod-labels={self.operator_pod_labels}"])
        lease = lambda: (self.get("lease", "dynamo-operator", RELEASE_NS) or {}).get("spec", {})  # noqa: E731
        self.wait("op-a to hold the Lease", lambda: lease().get("holderIdentity") == "op-a", 30)
        self.kill_operator("op-a", signal.SIGTERM)
        self.wait("op-b to take over the Lease", lambda: lease().get("holderIdentity") == "op-b", 60)
        self.kubectl("scale", "dyc/demo", "--replicas=3")
        self.wait_available("demo", "default", 3, timeout=300)
        self.check_keys("demo", "default", range(0, 30))

        # The members that left are out of the ring once the cluster is
        # Available; their pods may still be terminating for a moment.
        def pods():
            listed = json.loads(self.kubectl("get", "pods", "-l", "app.kubernetes.io/instance=demo",
                                             "-o", "json").stdout)["items"]
            return sorted(pod["metadata"]["name"] for pod in listed)
        self.wait("only the pods demo-0, demo-1 and demo-2 to remain",
                  lambda: pods() == ["demo-0", "demo-1", "demo-2"], 60)

    def bad_specs(self) -> None:
        base = {"apiVersion": "dynamokv.io/v1alpha1", "kind": "DynamoCluster",
                "metadata": {"name": "bad", "namespace": "default"}}
        # What the CRD's schema and CEL rules cannot see: a size that is a
        # quantity but not a positive one.
        refused_by_operator = [
            ({"replicas": 3, "storage": {"size": "0Gi"}}, "InvalidSpec"),
        ]
        for spec, reason in refused_by_operator:
            self.apply({**base, "spec": spec})

            def degraded():
                condition = self.condition(self.get("dyc", "bad"), "Degraded")
                return condition.get("status") == "True" and condition.get("reason") == reason
            self.wait(f"Degraded {reason} for {spec}", degraded, 60)
            if self.get("statefulset", "bad"):
                raise Failure(f"a StatefulSet was made for the refused spec {spec}")
            self.kubectl("delete", "dyc", "bad", "--wait=true", timeout=60)
        refused_by_api = [
            ({"replicas": 3, "replication": {"factor": 3, "readQuorum": 4, "writeQuorum": 2}}, "replication.readQuorum must not be greater than replication.factor"),
            ({"replicas": 2, "replication": {"factor": 3, "readQuorum": 2, "writeQuorum": 2}}, "replication.factor must not be greater than replicas"),
            ({"replicas": 3, "partitions": 2}, "partitions must not be fewer than replicas"),
            ({"replicas": 3, "image": ""}, "spec.image"),
            ({"replicas": 3, "partitions": 100}, "partitions must be a power of two"),
        ]
        for spec, words in refused_by_api:
            result = self.apply({**base, "spec": spec}, check=False)
            if result.returncode == 0:
                raise Failure(f"the API server accepted {spec}")
            if words not in result.stdout + result.stderr:
                raise Failure(f"the API server refused {spec} without saying {words!r}: {result.stdout}{result.stderr}")
        # Scaling below N is refused at once too (the scale subresource's
        # result is validated like any update).
        result = self.kubectl("scale", "dyc/demo", "--replicas=2", check=False)
        if result.returncode == 0 or "replication.factor must not be greater than replicas" not in result.stdout + result.stderr:
            raise Failure(f"kubectl scale below replication.factor was not refused: {result.stdout}{result.stderr}")
        result = self.kubectl("patch", "dyc", "demo", "--type=merge", "-p", '{"spec":{"partitions":512}}', check=False)
        if result.returncode == 0:
            raise Failure("the API server let spec.partitions change")

    def apply(self, obj: dict, check: bool = True):
        path = self.root / "manifest.json"
        path.write_text(json.dumps(obj))
        return self.kubectl("apply", "-f", str(path), check=check)

    def claims(self, name: str, namespace: str) -> list[str]:
        result = self.kubectl("get", "pvc", "-n", namespace, "-l", f"app.kubernetes.io/instance={name}", "-o", "json")
        return [item["metadata"]["name"] for item in json.loads(result.stdout)["items"]]

    def delete_cluster(self, name: str, namespace: str, keep_claims: bool) -> None:
        before = self.claims(name, namespace)
        if not before:
            raise Failure(f"{name} has no claims before its delete")
        self.kubectl("delete", "dyc", name, "-n", namespace, "--wait=true", "--timeout=120s", timeout=150)
        self.wait(f"the pods of {name} to stop", lambda: not json.loads(self.kubectl(
            "get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={name}", "-o", "json").stdout)["items"],
            120)
        if keep_claims:
            if sorted(self.claims(name, namespace)) != sorted(before):
                raise Failure(f"Retain: claims of {name} were {before}, now {self.claims(name, namespace)}")
        else:
            self.wait(f"the claims of {name} to be deleted", lambda: not self.claims(name, namespace), 60)

    def delete_demo_and_n5(self) -> None:
        self.kubectl("patch", "dyc", "demo", "--type=merge", "-p", '{"spec":{"pvcPolicyOnScaleDown":"Delete"}}')
        self.delete_cluster("demo", "default", keep_claims=False)
        self.kubectl("apply", "-f", str(self.repo / "examples/dynamocluster-n5.yaml"))
        n5 = self.get("dyc", "five") or {}
        name = n5.get("metadata", {}).get("name", "five")
        self.wait_available(name, "default", 5)
        self.put_keys(name, "default", range(0, 10), via=False)
        self.check_keys(name, "default", range(0, 10), index=3)
        self.delete_cluster(name, "default", keep_claims=True)

    def uninstall(self) -> None:
        # The chart no longer ships a cluster: the old value fails the install.
        result = self.helm("install", "again", str(self.repo / "charts/dynamo"), "--namespace", "other",
                           "--create-namespace", "--set", "cluster.enabled=true", check=False)
        if result.returncode == 0 or "cluster" not in result.stderr:
            raise Failure(f"cluster.enabled=true was not refused: {result.stderr}")
        self.helm("uninstall", "dynamo", "--namespace", RELEASE_NS, "--wait", "--timeout=60s")
        for name in list(self.operators):
            self.kill_operator(name, signal.SIGTERM)
        if self.get("clusterrole", "dynamo-operator"):
            raise Failure("helm uninstall left the operator's ClusterRole")
        leftover = json.loads(self.kubectl("get", "dyc", "-A", "-o", "json").stdout)["items"]
        if leftover:
            raise Failure(f"DynamoClusters left after helm uninstall: {[i['metadata']['name'] for i in leftover]}")

    def namespaced_zones(self) -> None:
        self.kubectl("create", "namespace", TEAM_NS)
        self.helm("install", "dynamo", str(self.repo / "charts/dynamo"), "--namespace", TEAM_NS,
                  "--set", f"watchNamespace={TEAM_NS}")
        self.start_operator("op-team", TEAM_NS, ["--namespace", TEAM_NS])
        self.kubectl("apply", "-n", TEAM_NS, "-f", str(self.repo / "examples/dynamocluster-zones.yaml"))
        cluster = self.wait_available("zoned", TEAM_NS, 6, timeout=300)
        members = cluster["status"]["members"]
        zones = {m["name"]: m.get("zone") for m in members}
        if not all(zones.values()):
            raise Failure(f"members without a zone: {zones}")
        per_zone = {}
        for zone in zones.values():
            per_zone[zone] = per_zone.get(zone, 0) + 1
        if sorted(per_zone.values()) != [2, 2, 2]:
            raise Failure(f"members are not spread over the zones: {zones}")
        ring = json.loads(self.dynamoctl("--endpoint", self.endpoint("zoned", TEAM_NS), "--output", "json",
                                         "ring").stdout)
        ring_zones = {m["id"]: m.get("zone") for m in ring["members"]}
        if ring_zones != zones:
            raise Failure(f"the ring's zones {ring_zones} differ from the status' {zones}")
        self.put_keys("zoned", TEAM_NS, range(0, 10), via=True)
        self.check_keys("zoned", TEAM_NS, range(0, 10), index=5)
        self.kubectl("patch", "dyc", "zoned", "-n", TEAM_NS, "--type=merge", "-p",
                     '{"spec":{"pvcPolicyOnScaleDown":"Delete"}}')
        self.delete_cluster("zoned", TEAM_NS, keep_claims=False)

    def node_pools(self) -> None:
        """examples/dynamocluster-pools.yaml in the namespaced install: one
        StatefulSet per pool, the weight-2 node owns about twice a weight-1
        node's partitions, and a pool scaled by one gets a new member."""
        self.kubectl("apply", "-n", TEAM_NS, "-f", str(self.repo / "examples/dynamocluster-pools.yaml"))
        cluster = self.wait_available("pooled", TEAM_NS, 3, timeout=300)
        self.check_pool_shares(cluster, {"small": 2, "large": 1})
        for name, replicas in (("pooled-small", 2), ("pooled-large", 1)):
            sts = self.get("statefulset", name, TEAM_NS) or {}
            if (sts.get("spec") or {}).get("replicas") != replicas:
                raise Failure(f"StatefulSet {name} does not run {replicas} pods: {sts.get('spec')}")
        endpoint = f"pooled-large-0.pooled-peers.{TEAM_NS}.svc:7400"
        for i in range(10):
            self.dynamoctl("--endpoint", endpoint, "put", f"key-{i}", f"value-{i}")
        self.check_buckets("pooled", TEAM_NS, endpoint)
        manifest = (self.repo / "examples/dynamocluster-pools.yaml").read_text()
        scaled = manifest.replace("replicas: 3", "replicas: 4").replace("replicas: 2\n      weight: 1",
                                                                        "replicas: 3\n      weight: 1")
        path = self.root / "pools-scaled.yaml"
        path.write_text(scaled)
        self.kubectl("apply", "-n", TEAM_NS, "-f", str(path))
        cluster = self.wait_available("pooled", TEAM_NS, 4, timeout=300)
        self.check_pool_shares(cluster, {"small": 3, "large": 1})
        members = sorted(m["name"] for m in cluster["status"]["members"])
        if "pooled-small-2" not in members:
            raise Failure(f"pooled-small-2 did not join: {members}")
        self.check_keys_at(f"pooled-small-2.pooled-peers.{TEAM_NS}.svc:7400", range(10))
        self.kubectl("patch", "dyc", "pooled", "-n", TEAM_NS, "--type=merge", "-p",
                     '{"spec":{"pvcPolicyOnScaleDown":"Delete"}}')
        self.delete_cluster("pooled", TEAM_NS, keep_claims=False)
        self.helm("uninstall", "dynamo", "--namespace", TEAM_NS, "--wait", "--timeout=60s")
        if self.get("clusterrole", "dynamo-operator-nodes"):
            raise Failure("helm uninstall left the Node reader ClusterRole")

    def check_buckets(self, name: str, namespace: str, endpoint: str) -> None:
        """The example's buckets reach the ring with their own N and serve
        keys by name; the API server refuses removing one or changing its
        factor."""
        def declared():
            ring = self.dynamoctl("--endpoint", endpoint, "--output", "json", "ring", check=False)
            if ring.returncode != 0:
                return None
            buckets = {b["name"]: b["n"] for b in json.loads(ring.stdout).get("buckets") or []}
            return buckets if buckets == {"sessions": 1, "ledger": 3} else None
        print(f"    buckets in the ring: {self.wait('buckets sessions and ledger in the ring', declared, 60)}")
        for bucket in ("sessions", "ledger"):
            self.dynamoctl("--endpoint", endpoint, "--bucket", bucket, "put", "account-1", f"in-{bucket}")
            got = self.dynamoctl("--endpoint", endpoint, "--bucket", bucket, "--output", "json", "get", "account-1")
            if f"in-{bucket}" not in got.stdout:
                raise Failure(f"bucket {bucket} did not read back its key: {got.stdout}")
        edits = [
            ('{"spec":{"buckets":[{"name":"ledger","factor":3,"readQuorum":2,"writeQuorum":3}]}}', "never removed"),
            ('{"spec":{"buckets":[{"name":"sessions","factor":2,"readQuorum":1,"writeQuorum":1},'
             '{"name":"ledger","factor":3,"readQuorum":2,"writeQuorum":3}]}}', "factor"),
        ]
        for patch, words in edits:
            result = self.kubectl("patch", "dyc", name, "-n", namespace, "--type=merge", "-p", patch, check=False)
            if result.returncode == 0 or words not in result.stdout + result.stderr:
                raise Failure(f"the API server did not refuse {patch} saying {words!r}: {result.stdout}{result.stderr}")

    def check_pool_shares(self, cluster: dict, replicas: dict[str, int]) -> None:
        """status.pools lists `replicas` members per pool, all ready, and a
        node of weight w owns about w times the partitions of a weight-1 node."""
        pools = {p["name"]: p for p in cluster["status"].get("pools") or []}
        if {name: p.get("members") for name, p in pools.items()} != replicas \
                or any(p.get("readyMembers") != p.get("members") for p in pools.values()):
            raise Failure(f"status.pools does not show {replicas} ready members: {pools}")
        per_node = {name: p["partitions"] / p["members"] / p["weight"] for name, p in pools.items()}
        print("    partitions per pool: " + ", ".join(
            f"{name} {p['partitions']} over {p['members']} node(s) of weight {p['weight']}" for name, p in pools.items()),
            flush=True)
        low, high = min(per_node.values()), max(per_node.values())
        if low <= 0 or high / low > 1.25:
            raise Failure(f"partitions per unit of weight differ by more than 25%: {per_node} from {pools}")

    def tls_cluster(self) -> None:
        """examples/dynamocluster-tls.yaml with Secrets from `dynamo-operator
        certs`: the operator reaches the nodes with its certificate, a client
        with the client certificate, a plaintext client is told why not."""
        self.kubectl("create", "namespace", TLS_NS)
        ca_dir = self.root / "tls-ca"
        secrets = self.run([str(self.args.operator_binary), "certs", "--cluster", "vault", "--namespace", TLS_NS,
                            "--operator-namespace", TLS_NS, "--dir", str(ca_dir)]).stdout
        manifest = self.root / "tls-secrets.yaml"
        manifest.write_text(secrets)
        self.kubectl("apply", "-f", str(manifest))
        self.helm("install", "dynamo", str(self.repo / "charts/dynamo"), "--namespace", TLS_NS,
                  "--set", f"watchNamespace={TLS_NS}", "--set", "tls.secretName=dynamo-operator-tls")
        deployment = self.get("deployment", "dynamo-operator", TLS_NS) or {}
        pod = deployment.get("spec", {}).get("template", {}).get("spec", {})
        env = {item["name"]: item.get("value") for item in (pod.get("containers") or [{}])[0].get("env", [])}
        secret_volumes = [v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v]
        if env.get("DYNAMO_OPERATOR_TLS_CERT") != "/etc/dynamo-operator/tls/tls.crt" \
                or secret_volumes != ["dynamo-operator-tls"]:
            raise Failure(f"the chart's operator does not mount its certificate: env {env}, volumes {secret_volumes}")
        # This out-of-cluster operator presents the same files as the chart's pod would.
        operator = [f"--tls-ca={ca_dir / 'ca.pem'}", f"--tls-cert={ca_dir / f'vault.{TLS_NS}-operator.pem'}",
                    f"--tls-key={ca_dir / f'vault.{TLS_NS}-operator-key.pem'}"]
        self.start_operator("op-tls", TLS_NS, ["--namespace", TLS_NS, *operator])
        self.kubectl("apply", "-n", TLS_NS, "-f", str(self.repo / "examples/dynamocluster-tls.yaml"))
        self.wait_available("vault", TLS_NS, 3)
        client = ["--ca", str(ca_dir / "ca.pem"), "--cert", str(ca_dir / f"vault.{TLS_NS}-client.pem"),
                  "--key", str(ca_dir / f"vault.{TLS_NS}-client-key.pem")]
        endpoint = self.endpoint("vault", TLS_NS)
        for i in range(10):
            self.dynamoctl("--endpoint", endpoint, *client, "put", f"key-{i}", f"value-{i}")
        for i in range(10):
            got = self.dynamoctl("--endpoint", self.endpoint("vault", TLS_NS, i % 3), *client, "--output", "json",
                                 "get", f"key-{i}")
            if f"value-{i}" not in got.stdout:
                raise Failure(f"key-{i} over TLS: {got.stdout}")
        plain = self.dynamoctl("--endpoint", endpoint, "get", "key-0", check=False)
        if plain.returncode == 0 or "TLS" not in plain.stderr:
            raise Failure(f"a plaintext client was not told about TLS: exit {plain.returncode}: {plain.stderr}")
        self.kubectl("patch", "dyc", "vault", "-n", TLS_NS, "--type=merge", "-p",
                     '{"spec":{"pvcPolicyOnScaleDown":"Delete"}}')
        self.delete_cluster("vault", TLS_NS, keep_claims=False)
        self.kill_operator("op-tls", sig=signal.SIGTERM)
        self.helm("uninstall", "dynamo", "--namespace", TLS_NS, "--wait", "--timeout=60s")

    # --- failure report ------------------------------------------------------------
    def report(self) -> None:
        print("=== what the cluster looked like", flush=True)
        for name, namespace in self.watched:
            print(self.kubectl("get", "dyc", name, "-n", namespace, "-o", "yaml", check=False).stdout)
        for args in (["get", "dyc,sts,pods,pvc", "-A", "-o", "wide"], ["get", "events", "-A", "--sort-by=.lastTimestamp"]):
            result = self.kubectl(*args, check=False)
            print(f"$ kubectl {' '.join(args)}\n{result.stdout}{result.stderr}")
        for log in sorted(self.logs.glob("*.log")) + sorted((self.root / "kubelet" / "pods").glob("*/*.log")):
            lines = log.read_text(errors="replace").splitlines()
            print(f"=== {log.relative_to(self.root)} (last 40 of {len(lines)} lines)")
            print("\n".join(lines[-40:]))

    def close(self) -> None:
        for name in list(self.operators):
            self.kill_operator(name, signal.SIGTERM)
        if self.kubelet:
            stop(self.kubelet, grace=20)
        self.cp.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag in ("kube-bin", "etcd", "helm", "node-binary", "operator-binary", "dynamoctl", "repo", "hosts"):
        parser.add_argument(f"--{flag}", required=True, type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="dynamo-e2e-"))
    suite = Suite(args, root)
    failed = None
    try:
        suite.cp.start()
        suite.start_kubelet()
        suite.step("helm install; the operator runs with the chart's ServiceAccount", suite.install)
        suite.step("examples/dynamocluster.yaml: Available, put and get", suite.create_demo)
        suite.step("networkPolicy on: an owned NetworkPolicy that admits the operator; off: deleted",
                   suite.network_policy)
        suite.step("scale 3 -> 5 with the operator SIGKILLed mid-change", suite.scale_up_with_a_killed_operator)
        suite.step("a second operator takes the Lease; scale 5 -> 3 keeps every key", suite.second_replica_takes_over)
        suite.step("bad specs are refused", suite.bad_specs)
        suite.step("delete with pvcPolicy Delete; n5 example; delete with Retain", suite.delete_demo_and_n5)
        suite.step("helm uninstall (no cluster in the release)", suite.uninstall)
        suite.step("namespaced install; zones example spread over zones", suite.namespaced_zones)
        suite.step("pools example: weighted shares per pool, buckets with their own N; a pool scaled by one", suite.node_pools)
        suite.step("TLS example: certificates from `dynamo-operator certs`, operator and client over mutual TLS",
                   suite.tls_cluster)
    except (Failure, Timeout, subprocess.TimeoutExpired, RuntimeError) as error:
        failed = error
        failed_step = len(suite.passed) + 1
        print(f"FAILED: {error}", flush=True)
        traceback.print_exc()
        suite.report()
    finally:
        suite.close()
        if args.keep or failed:
            print(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    total = time.monotonic() - started
    steps = len(suite.passed)
    print(f"e2e: the suite took {total:.0f}s")
    print(f"e2e: {steps} passed, {1 if failed else 0} failed")
    if failed:
        # Repeated last, where a truncated log still shows it.
        print(f"e2e: step {failed_step} failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
