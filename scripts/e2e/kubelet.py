"""A stand-in kubelet and scheduler for the end-to-end suite.

It registers a few fake Nodes in zones and keeps their Ready condition and
`kube-node-lease` Leases fresh, binds pending pods of StatefulSets to them
(spreading over zones), makes a PersistentVolume for each pending claim, and
runs each bound pod's first container as a local process:

* on its own loopback address (127.0.0.X, the pod IP), written with the
  pod's DNS names into a hosts file that the suite bind-mounts over
  /etc/hosts inside a private mount namespace;
* with the container's env (values and field references) and its args with
  $(VAR) expanded; `command[0]` is mapped to a local binary (--binary);
* with its volumes as host directories: ConfigMaps and Secrets written to a per-pod
  directory and kept up to date, emptyDirs per pod, and claims as one
  directory per PersistentVolume that outlives its pods. A container path
  in the args or in a mounted file is translated to its host path, and the
  wildcard listen address 0.0.0.0 to the pod IP.

It reports the pod's phase, conditions and container status, with readiness
(and liveness) from the container's HTTP probes, restarts an exited
container with a growing back-off (CrashLoopBackOff), and honours graceful
deletion: SIGTERM, SIGKILL after the grace period, then the pod is deleted
with grace 0. Pods of other owners (the operator's Deployment: there is no
image to run) stay Pending. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kube import Api, ApiError, Credentials, micro_now, now, spawn  # noqa: E402

ZONE_LABEL = "topology.kubernetes.io/zone"
MANAGED = "e2e.dynamokv.io/kubelet"
BACKOFF_START = 2.0
BACKOFF_CAP = 20.0
BACKOFF_RESET_AFTER = 60.0
HEARTBEAT_EVERY = 10.0


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} kubelet: {message}", flush=True)


@dataclass
class Probe:
    """An HTTP GET probe's settings and its running counts."""

    spec: dict
    period: float
    next_at: float = 0.0
    failures: int = 0
    ok: bool = False


@dataclass
class LocalPod:
    """What this kubelet knows about one pod it runs."""

    uid: str
    namespace: str
    name: str
    ip: str
    dir: Path
    process: subprocess.Popen | None = None
    started_at: str = ""
    started_mono: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    restart_at: float = 0.0
    last_state: dict = field(default_factory=dict)
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    readiness: Probe | None = None
    liveness: Probe | None = None
    live_after: float = 0.0
    ready: bool = False
    transitions: dict = field(default_factory=dict)
    terminating_since: float = 0.0
    kill_at: float = 0.0
    last_status: dict | None = None
    pod_start: str = ""


class Kubelet:
    def __init__(self, api: Api, nodes: list[tuple[str, str]], root: Path, binaries: dict[str, str],
                 hosts: Path, probe_period_cap: float):
        self.api = api
        self.nodes = nodes
        self.root = root
        self.binaries = binaries
        self.hosts = hosts
        self.probe_period_cap = probe_period_cap
        self.pods: dict[str, LocalPod] = {}
        self.ips: dict[tuple[str, str], str] = {}
        self.names: dict[str, list[str]] = {}
        self.base_hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else ""
        self.last_heartbeat = 0.0
        self.stopping = False

    # --- nodes -----------------------------------------------------------
    def register(self) -> None:
        for name, zone in self.nodes:
            body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                ZONE_LABEL: zone, MANAGED: "true"}}}
            try:
                self.api.create("/api/v1/nodes", body)
            except ApiError as error:
                if error.status != 409:
                    raise
        self.heartbeat()
        log(f"registered nodes {', '.join(f'{n} ({z})' for n, z in self.nodes)}")

    def heartbeat(self) -> None:
        stamp = now()
        for name, _ in self.nodes:
            conditions = [{"type": kind, "status": "False", "reason": f"Kubelet{reason}",
                           "message": message, "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
                          for kind, reason, message in [
                              ("MemoryPressure", "HasSufficientMemory", "stand-in kubelet"),
                              ("DiskPressure", "HasNoDiskPressure", "stand-in kubelet"),
                              ("PIDPressure", "HasSufficientPID", "stand-in kubelet")]]
            conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                               "message": "stand-in kubelet is posting ready status",
                               "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
            resources = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
            self.api.merge_patch(f"/api/v1/nodes/{name}/status", {"status": {
                "conditions": conditions, "capacity": resources, "allocatable": resources,
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
                "nodeInfo": {"machineID": name, "systemUUID": name, "bootID": name, "kernelVersion": "",
                             "osImage": "dynamokv e2e", "containerRuntimeVersion": "local://0",
                             "kubeletVersion": "v0.0.0-e2e", "kubeProxyVersion": "", "operatingSystem": "linux",
                             "architecture": "amd64"}}})
            lease = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
            spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_now()}
            try:
                self.api.merge_patch(lease, {"spec": spec})
            except ApiError as error:
                if error.status != 404:
                    raise
                self.api.create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": spec})
        self.last_heartbeat = time.monotonic()

    # --- the loop ----------------------------------------------------------
    def run(self) -> None:
        self.register()
        while not self.stopping:
            started = time.monotonic()
            try:
                if started - self.last_heartbeat > HEARTBEAT_EVERY:
                    self.heartbeat()
                self.sync()
            except Exception as error:  # noqa: BLE001 - a failed round is retried
                log(f"sync failed: {error!r}")
            time.sleep(max(0.05, 0.5 - (time.monotonic() - started)))
        self.shutdown()

    def sync(self) -> None:
        pods = self.api.get("/api/v1/pods")["items"]
        self.volumes()
        mine = {name for name, _ in self.nodes}
        seen = set()
        for pod in pods:
            meta, spec = pod["metadata"], pod["spec"]
            if not any(ref.get("kind") == "StatefulSet" for ref in meta.get("ownerReferences", [])):
                continue
            node = spec.get("nodeName")
            if not node:
                if not meta.get("deletionTimestamp"):
                    self.schedule(pod, pods)
                continue  # handled from the next round, as bound
            if node not in mine:
                continue
            seen.add(meta["uid"])
            try:
                self.handle(pod)
            except ApiError as error:
                if error.status not in (404, 409):
                    log(f"{meta['namespace']}/{meta['name']}: {error}")
        for uid in list(self.pods):
            if uid not in seen:
                local = self.pods.pop(uid)
                self.kill(local, signal.SIGKILL)
                log(f"{local.namespace}/{local.name}: gone from the API; killed")

    # --- scheduling --------------------------------------------------------
    def schedule(self, pod: dict, pods: list[dict]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        selector = spec.get("nodeSelector") or {}
        labels = {name: {"kubernetes.io/hostname": name, ZONE_LABEL: zone, "kubernetes.io/os": "linux"}
                  for name, zone in self.nodes}
        candidates = [(name, zone) for name, zone in self.nodes
                      if all(labels[name].get(k) == v for k, v in selector.items())]
        if not candidates:
            return
        owner = next(ref["uid"] for ref in meta["ownerReferences"] if ref.get("kind") == "StatefulSet")
        siblings = [p["spec"].get("nodeName") for p in pods
                    if p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
                    and any(r.get("uid") == owner for r in p["metadata"].get("ownerReferences", []))]
        zone_of = dict(self.nodes)
        per_zone = {zone: sum(1 for n in siblings if zone_of.get(n) == zone) for _, zone in candidates}
        per_node = {name: siblings.count(name) for name, _ in candidates}
        name, _ = min(candidates, key=lambda c: (per_zone[c[1]], per_node[c[0]], c[1], c[0]))
        self.api.create(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": name}})
        # Later pods of this round see where this one went.
        spec["nodeName"] = name
        log(f"{meta['namespace']}/{meta['name']}: bound to {name} ({zone_of[name]})")

    # --- volumes -----------------------------------------------------------
    def volumes(self) -> None:
        """A PersistentVolume (a host directory) for every pending claim; a
        released volume and its directory are removed."""
        claims = self.api.get("/api/v1/persistentvolumeclaims")["items"]
        volumes = self.api.get("/api/v1/persistentvolumes")["items"]
        claimed = {v["spec"].get("claimRef", {}).get("uid") for v in volumes}
        for claim in claims:
            meta, spec = claim["metadata"], claim["spec"]
            if spec.get("volumeName") or meta["uid"] in claimed or meta.get("deletionTimestamp"):
                continue
            name = f"pv-{meta['uid'][:13]}"
            path = self.root / "volumes" / name
            path.mkdir(parents=True, exist_ok=True)
            self.api.create("/api/v1/persistentvolumes", {
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": {MANAGED: "true"}},
                "spec": {"capacity": {"storage": spec["resources"]["requests"]["storage"]},
                         "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
                         "storageClassName": spec.get("storageClassName") or "",
                         "persistentVolumeReclaimPolicy": "Retain",
                         "hostPath": {"path": str(path)},
                         "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                      "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}}})
            log(f"{meta['namespace']}/{meta['name']}: created {name} at {path}")
        live = {c["metadata"]["uid"] for c in claims}
        for volume in volumes:
            ref = volume["spec"].get("claimRef", {})
            if volume["metadata"].get("labels", {}).get(MANAGED) and ref.get("uid") not in live:
                self.api.delete(f"/api/v1/persistentvolumes/{volume['metadata']['name']}")
                path = Path(volume["spec"]["hostPath"]["path"])
                if path.is_relative_to(self.root):
                    subprocess.run(["rm", "-rf", str(path)], check=False)
                log(f"{volume['metadata']['name']}: claim {ref.get('namespace')}/{ref.get('name')} is gone; "
                    "volume deleted")

    def mounts(self, pod: dict, local: LocalPod, env: dict) -> tuple[list[tuple[str, str]], dict, str | None]:
        """Container path -> host path of every mount, the ConfigMap files to
        write (host path -> text), or why the volumes are not ready."""
        spec = pod["spec"]
        namespace = pod["metadata"]["namespace"]
        container = spec["containers"][0]
        sources: dict[str, Path] = {}
        files: dict[str, str] = {}
        for volume in spec.get("volumes", []):
            name = volume["name"]
            host = local.dir / "volumes" / name
            if "configMap" in volume or "secret" in volume:
                kind, source = ("configmap", volume["configMap"]) if "configMap" in volume \
                    else ("secret", volume["secret"])
                object_name = source.get("name") or source.get("secretName")
                found = self.api.get_or_none(f"/api/v1/namespaces/{namespace}/{kind}s/{object_name}")
                if found is None:
                    if source.get("optional"):
                        continue
                    return [], {}, f"{kind} \"{object_name}\" not found"
                data = found.get("data") or {}
                if kind == "secret":
                    data = {k: base64.b64decode(v).decode() for k, v in data.items()}
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] in data:
                        files[str(host / item["path"])] = data[item["key"]]
            elif "persistentVolumeClaim" in volume:
                claim = self.api.get_or_none(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/"
                                             f"{volume['persistentVolumeClaim']['claimName']}")
                if not claim or claim.get("status", {}).get("phase") != "Bound":
                    return [], {}, f"claim {volume['persistentVolumeClaim']['claimName']} is not bound yet"
                pv = self.api.get(f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")
                host = Path(pv["spec"]["hostPath"]["path"])
            elif "emptyDir" not in volume:
                return [], {}, f"volume {name}: only configMap, secret, emptyDir and claims are supported"
            host.mkdir(parents=True, exist_ok=True)
            sources[name] = host
        mounts = []
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in sources:
                continue
            host = sources[mount["name"]]
            sub = mount.get("subPath") or expand(mount.get("subPathExpr", ""), env)
            mounts.append((mount["mountPath"], str(host / sub) if sub else str(host)))
        mounts.sort(key=lambda m: -len(m[0]))
        return mounts, files, None

    # --- pods --------------------------------------------------------------
    def ip_for(self, namespace: str, name: str) -> str:
        key = (namespace, name)
        if key not in self.ips:
            n = 10 + len(self.ips)
            self.ips[key] = f"127.0.{n // 250}.{n % 250 + 1}" if n >= 250 else f"127.0.0.{n}"
        return self.ips[key]

    def publish_names(self, pod: dict, ip: str) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        host, sub, ns = spec.get("hostname") or meta["name"], spec.get("subdomain"), meta["namespace"]
        names = [host]
        if sub:
            names = [f"{host}.{sub}.{ns}.svc.cluster.local", f"{host}.{sub}.{ns}.svc", f"{host}.{sub}.{ns}",
                     f"{host}.{sub}"]
        if self.names.get(ip) != names:
            self.names[ip] = names
            lines = [self.base_hosts.rstrip("\n"), "# pods of the DynamoKV end-to-end suite"]
            lines += [f"{address} {' '.join(n)}" for address, n in sorted(self.names.items())]
            # In place: the file is bind-mounted, a rename would not be seen.
            with open(self.hosts, "r+" if self.hosts.exists() else "w") as out:
                out.seek(0)
                out.truncate()
                out.write("\n".join(lines) + "\n")

    def handle(self, pod: dict) -> None:
        meta = pod["metadata"]
        local = self.pods.get(meta["uid"])
        if local is None:
            ip = self.ip_for(meta["namespace"], meta["name"])
            local = LocalPod(uid=meta["uid"], namespace=meta["namespace"], name=meta["name"], ip=ip,
                             dir=self.root / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}",
                             pod_start=now())
            local.dir.mkdir(parents=True, exist_ok=True)
            self.pods[meta["uid"]] = local
            self.publish_names(pod, ip)
        if meta.get("deletionTimestamp"):
            self.terminate(pod, local)
            return
        container = pod["spec"]["containers"][0]
        env = self.environment(pod, local)
        mounts, files, problem = self.mounts(pod, local, env)
        if problem is None:
            for path, text in files.items():
                text = translate(text, mounts, local.ip)
                target = Path(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists() or target.read_text() != text:
                    target.write_text(text)
        clock = time.monotonic()
        process = local.process
        if process is not None and process.poll() is not None:
            self.exited(pod, local)
        if local.process is None and problem is None and clock >= local.restart_at and not local.terminating_since:
            self.start(pod, local, container, env, mounts)
        elif problem is not None and local.process is None:
            local.waiting = ("ContainerCreating", problem)
        self.probe(local, clock)
        self.report(pod, local)

    def environment(self, pod: dict, local: LocalPod) -> dict:
        meta, spec = pod["metadata"], pod["spec"]
        fields = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
                  "metadata.uid": meta["uid"], "spec.nodeName": spec.get("nodeName", ""),
                  "spec.serviceAccountName": spec.get("serviceAccountName", ""),
                  "status.podIP": local.ip, "status.hostIP": "127.0.0.1"}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOSTNAME": meta["name"]}
        for var in spec["containers"][0].get("env", []):
            if "value" in var:
                env[var["name"]] = expand(var["value"], env)
            elif "fieldRef" in (var.get("valueFrom") or {}):
                env[var["name"]] = fields.get(var["valueFrom"]["fieldRef"]["fieldPath"], "")
        return env

    def start(self, pod: dict, local: LocalPod, container: dict, env: dict, mounts) -> None:
        command = [expand(c, env) for c in container.get("command", [])]
        args = [translate(expand(a, env), mounts, local.ip) for a in container.get("args", [])]
        if not command or command[0] not in self.binaries:
            local.waiting = ("CreateContainerError", f"no local binary for {command[:1]}")
            return
        argv = [self.binaries[command[0]], *command[1:], *args]
        local.process = spawn(argv, local.dir / f"{container['name']}.log", env=env, cwd=local.dir)
        local.started_at = now()
        local.started_mono = time.monotonic()
        local.waiting = None
        local.ready = False
        local.readiness = probe_of(container.get("readinessProbe"), self.probe_period_cap, container)
        local.liveness = probe_of(container.get("livenessProbe"), self.probe_period_cap, container)
        delay = (container.get("livenessProbe") or {}).get("initialDelaySeconds", 0)
        local.live_after = local.started_mono + min(delay, 10)
        log(f"{local.namespace}/{local.name}: started pid {local.process.pid} on {local.ip} "
            f"(restart {local.restarts}): {' '.join(argv)}")

    def exited(self, pod: dict, local: LocalPod) -> None:
        process = local.process
        assert process is not None
        code = process.returncode
        ran = time.monotonic() - local.started_mono
        local.process = None
        local.ready = False
        local.last_state = {"terminated": {"exitCode": code if code >= 0 else 128 - code,
                                           "reason": "Completed" if code == 0 else "Error",
                                           "startedAt": local.started_at, "finishedAt": now()}}
        local.restarts += 1
        local.backoff = BACKOFF_START if ran > BACKOFF_RESET_AFTER or not local.backoff \
            else min(local.backoff * 2, BACKOFF_CAP)
        local.restart_at = time.monotonic() + local.backoff
        local.waiting = ("CrashLoopBackOff",
                         f"back-off {local.backoff:.0f}s restarting failed container="
                         f"{pod['spec']['containers'][0]['name']} pod={local.name}_{local.namespace}")
        log(f"{local.namespace}/{local.name}: exited with {code} after {ran:.1f}s; restart in {local.backoff:.0f}s")

    def probe(self, local: LocalPod, clock: float) -> None:
        if local.process is None:
            return
        readiness = local.readiness
        if readiness is None:
            local.ready = True
        elif clock >= readiness.next_at:
            readiness.next_at = clock + readiness.period
            if http_ok(local.ip, readiness.spec):
                readiness.failures, local.ready = 0, True
            else:
                readiness.failures += 1
                if readiness.failures >= readiness.spec.get("failureThreshold", 3) or not local.ready:
                    local.ready = False
        liveness = local.liveness
        if liveness is not None and clock >= max(liveness.next_at, local.live_after):
            liveness.next_at = clock + liveness.period
            if http_ok(local.ip, liveness.spec):
                liveness.failures = 0
            else:
                liveness.failures += 1
                if liveness.failures >= liveness.spec.get("failureThreshold", 3):
                    log(f"{local.namespace}/{local.name}: liveness probe failed; killing the container")
                    self.kill(local, signal.SIGKILL)

    def report(self, pod: dict, local: LocalPod) -> None:
        container = pod["spec"]["containers"][0]
        running = local.process is not None and local.process.poll() is None
        ready = running and local.ready and not local.terminating_since

        def condition(kind: str, value: bool) -> dict:
            status = "True" if value else "False"
            previous = local.transitions.get(kind)
            if previous is None or previous[0] != status:
                local.transitions[kind] = (status, now())
            return {"type": kind, "status": status, "lastProbeTime": None,
                    "lastTransitionTime": local.transitions[kind][1]}

        if running:
            state = {"running": {"startedAt": local.started_at}}
        else:
            reason, message = local.waiting or ("ContainerCreating", "")
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        status = {
            "phase": "Running" if local.started_at else "Pending",
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": local.ip, "podIPs": [{"ip": local.ip}], "startTime": local.pod_start,
            "conditions": [condition("PodScheduled", True), condition("Initialized", True),
                           condition("ContainersReady", ready), condition("Ready", ready)],
            "containerStatuses": [{
                "name": container["name"], "image": container.get("image", ""), "imageID": "",
                "containerID": f"local://{local.process.pid}" if running else "",
                "ready": ready, "started": running, "restartCount": local.restarts,
                "state": state, "lastState": local.last_state}],
        }
        if status != local.last_status:
            body = {"metadata": {"uid": local.uid}, "status": status}
            self.api.merge_patch(f"/api/v1/namespaces/{local.namespace}/pods/{local.name}/status", body)
            local.last_status = copy.deepcopy(status)

    def terminate(self, pod: dict, local: LocalPod) -> None:
        meta = pod["metadata"]
        clock = time.monotonic()
        if not local.terminating_since:
            local.terminating_since = clock
            grace = meta.get("deletionGracePeriodSeconds", 30)
            local.kill_at = clock + grace
            if local.process is not None and local.process.poll() is None:
                self.kill(local, signal.SIGTERM)
                log(f"{local.namespace}/{local.name}: deleted; SIGTERM, {grace}s grace")
            self.report(pod, local)
        process = local.process
        if process is not None and process.poll() is None:
            if clock < local.kill_at:
                return
            log(f"{local.namespace}/{local.name}: grace period over; SIGKILL")
            self.kill(local, signal.SIGKILL)
        self.api.delete(f"/api/v1/namespaces/{local.namespace}/pods/{local.name}",
                        {"gracePeriodSeconds": 0, "preconditions": {"uid": local.uid}})
        self.pods.pop(local.uid, None)
        log(f"{local.namespace}/{local.name}: stopped and deleted")

    def kill(self, local: LocalPod, sig: int) -> None:
        process = local.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            process.wait(10)

    def shutdown(self) -> None:
        for local in self.pods.values():
            self.kill(local, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for local in self.pods.values():
            if local.process is not None:
                try:
                    local.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.kill(local, signal.SIGKILL)
        log("stopped")


def expand(text: str, env: dict) -> str:
    """Kubernetes' $(VAR) expansion; $$ escapes, unknown names stay."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def translate(text: str, mounts: list[tuple[str, str]], ip: str) -> str:
    """A container's paths to their host paths (in one pass, longest first,
    so a host path is never translated again), and 0.0.0.0 to the pod IP."""
    if mounts:
        hosts = dict(mounts)
        pattern = "|".join(re.escape(path) for path, _ in mounts)
        text = re.sub(f"({pattern})(?=$|[/\\s\"',:])", lambda m: hosts[m.group(1)], text)
    return text.replace("0.0.0.0:", f"{ip}:")


def probe_of(spec: dict | None, cap: float, container: dict) -> Probe | None:
    """The container's HTTP probe, its named port resolved."""
    if not spec or "httpGet" not in spec:
        return None
    spec = copy.deepcopy(spec)
    port = spec["httpGet"]["port"]
    if isinstance(port, str):
        spec["httpGet"]["port"] = next((p["containerPort"] for p in container.get("ports", [])
                                        if p.get("name") == port), port)
    return Probe(spec=spec, period=min(float(spec.get("periodSeconds", 10)), cap))


def http_ok(ip: str, spec: dict) -> bool:
    get = spec["httpGet"]
    try:
        with urllib.request.urlopen(f"http://{ip}:{get['port']}{get.get('path', '/')}",
                                    timeout=min(spec.get("timeoutSeconds", 1), 2)) as response:
            return 200 <= response.status < 400
    except Exception:  # noqa: BLE001 - any failure is a failed probe
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca", required=True, type=Path)
    parser.add_argument("--cert", required=True, type=Path)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--root", required=True, type=Path, help="directory of pods and volumes")
    parser.add_argument("--hosts", required=True, type=Path, help="hosts file to keep the pods' names in")
    parser.add_argument("--node", action="append", default=[], help="NAME=ZONE, repeatable")
    parser.add_argument("--binary", action="append", default=[], help="CONTAINER_PATH=HOST_PATH, repeatable")
    parser.add_argument("--probe-period-cap", type=float, default=1.0,
                        help="probe at least this often (seconds), to keep the suite short")
    args = parser.parse_args()
    api = Api(Credentials(args.server, args.ca, args.cert, args.key))
    nodes = [tuple(item.split("=", 1)) for item in args.node]
    binaries = dict(item.split("=", 1) for item in args.binary)
    kubelet = Kubelet(api, nodes, args.root, binaries, args.hosts, args.probe_period_cap)

    def stop(*_):
        kubelet.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    kubelet.run()


if __name__ == "__main__":
    main()
