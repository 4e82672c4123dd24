"""A Kubernetes control plane on 127.0.0.1 for the end-to-end suite: etcd,
kube-apiserver and kube-controller-manager, with certificates made by
openssl, all in one directory. No scheduler and no kubelet: the suite's
stand-in kubelet (kubelet.py) does their part."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from kube import Api, Credentials, spawn, stop, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(pki: Path) -> None:
    """A CA, the apiserver's serving cert, an admin client cert
    (O=system:masters) and the service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=dynamokv-e2e-ca", cwd=pki)
    (pki / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n")
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject, ext in [("server", "/CN=kube-apiserver", "server.ext"),
                               ("admin", "/O=system:masters/CN=e2e-admin", "client.ext")]:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", subject, cwd=pki)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{name}.crt", cwd=pki)
    openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def kubeconfig(path: Path, server: str, ca: Path, user: dict) -> None:
    """Writes a kubeconfig (JSON is YAML) with one cluster, user and context."""
    import json
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "user"}}],
        "current-context": "e2e",
    }, indent=1))


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager in `root`."""

    def __init__(self, root: Path, bin_dir: Path, etcd: Path):
        self.root, self.bin_dir, self.etcd = root, bin_dir, etcd
        self.pki = root / "pki"
        self.logs = root / "logs"
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.server = ""
        self.admin_kubeconfig = root / "admin.kubeconfig"

    @property
    def admin(self) -> Credentials:
        return Credentials(self.server, self.pki / "ca.crt", self.pki / "admin.crt", self.pki / "admin.key")

    def start(self) -> None:
        started = time.monotonic()
        make_certs(self.pki)
        etcd_port, etcd_peer = free_port(), free_port()
        self._spawn("etcd", [
            str(self.etcd), "--data-dir", str(self.root / "etcd"), "--name", "e2e",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=e2e=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync", "--log-level=warn",
        ])
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        pki = self.pki
        self._spawn("kube-apiserver", [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            f"--cert-dir={self.root / 'apiserver'}",
            f"--tls-cert-file={pki / 'server.crt'}", f"--tls-private-key-file={pki / 'server.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--endpoint-reconciler-type=none",
            "--profiling=false", "-v=1",
        ])
        kubeconfig(self.admin_kubeconfig, self.server, pki / "ca.crt",
                   {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")})
        api = Api(self.admin, timeout=5)
        wait_for("kube-apiserver /readyz", lambda: self._ready(api), timeout=120)
        (self.root / "flex").mkdir(exist_ok=True)
        self._spawn("kube-controller-manager", [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={self.admin_kubeconfig}",
            f"--authentication-kubeconfig={self.admin_kubeconfig}",
            f"--authorization-kubeconfig={self.admin_kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            "--use-service-account-credentials=false", "--leader-elect=false", "--controllers=*",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--flex-volume-plugin-dir={self.root / 'flex'}",
            "--profiling=false", "-v=1",
        ])
        # The service-account controller makes `default` in every namespace.
        wait_for("the default ServiceAccount", lambda: self._alive() and api.get_or_none(
            "/api/v1/namespaces/default/serviceaccounts/default"), timeout=60)
        print(f"control plane: up in {time.monotonic() - started:.1f}s at {self.server}", flush=True)

    def _ready(self, api: Api) -> bool:
        self._alive()
        try:
            api.request("GET", "/readyz")
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def _alive(self) -> bool:
        for name, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.logs / name}.log")
        return True

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.processes.append((name, spawn(argv, self.logs / f"{name}.log")))

    def check(self) -> None:
        """Raises when a component died."""
        self._alive()

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            stop(process, grace=10)
        self.processes.clear()
