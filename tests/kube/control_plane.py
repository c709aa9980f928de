"""A real Kubernetes control plane on loopback for the tests: etcd, kube-apiserver and
kube-controller-manager 1.20.2 (built by ``make kube``), fresh certificates, RBAC on.

No kubelet and no scheduler run: :class:`FakeKubelet` (tests/kube/fake_kubelet.py) binds pods to
one fake Node and reports them Running and Ready, which is all the deployment, ReplicaSet and
Job controllers need to do their real work (revisions, rollouts, progress deadlines, Jobs).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.loopback_daemon import free_port

KUBE_VERSION = "1.20.2"
ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_TOKEN_USER = "test-admin"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"


def kube_dir() -> Path:
    """Where ``make kube`` (scripts/kube-build.sh) puts the binaries."""
    default = Path.home() / ".cache" / "rollback-bot" / f"kube-{KUBE_VERSION}"
    return Path(os.environ.get("ROLLBACK_BOT_KUBE_DIR", default))


def missing_binaries() -> str | None:
    """Why the control plane cannot start here, in one line; None when it can."""
    bin_dir = kube_dir() / "bin"
    missing = [
        name
        for name in ("kube-apiserver", "kube-controller-manager")
        if not os.access(bin_dir / name, os.X_OK)
    ]
    if shutil.which("etcd") is None:
        missing.append("etcd")
    if missing:
        where = f"{bin_dir}, etcd on PATH"
        return f"no real control plane: {', '.join(missing)} missing ({where}); run `make kube`"
    return None


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(d: Path) -> None:
    """A CA, the API server's serving certificate, the service-account key pair."""
    _openssl("genrsa", "-out", "ca.key", "2048", cwd=d)
    _openssl(
        *("req", "-x509", "-new", "-nodes", "-key", "ca.key", "-days", "2"),
        *("-subj", "/CN=rollback-bot-test-ca", "-out", "ca.crt"),
        cwd=d,
    )
    _openssl("genrsa", "-out", "server.key", "2048", cwd=d)
    _openssl(
        *("req", "-new", "-key", "server.key", "-subj", "/CN=kube-apiserver", "-out", "server.csr"),
        cwd=d,
    )
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,IP:10.0.0.1\n"
        "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    )
    _openssl(
        *("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key"),
        *("-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.crt"),
        cwd=d,
    )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def write_kubeconfig(path: Path, server: str, ca: Path, token: str, user: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


@dataclass
class ControlPlane:
    """The processes and the files of one control plane; :meth:`stop` removes them all."""

    root: Path
    server: str = ""
    admin_token: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started_seconds: float = 0.0

    @property
    def ca(self) -> Path:
        return self.root / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.root / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.root / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()

    def _wait_healthy(self, name: str, url: str, timeout: float, token: str | None = None) -> None:
        context = ssl.create_default_context(cafile=str(self.ca))
        if url.startswith("https://127.0.0.1") and name == "kube-controller-manager":
            context = ssl._create_unverified_context()  # its own self-signed serving cert
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}:\n{self.log_tail(name)}"
                )
            request = urllib.request.Request(url)
            if token:
                request.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(request, timeout=2, context=context) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.05)
        raise RuntimeError(f"{name} not healthy after {timeout} s ({last}):\n{self.log_tail(name)}")

    def start(self) -> ControlPlane:
        began = time.monotonic()
        bin_dir = kube_dir() / "bin"
        d = self.root
        make_certificates(d)
        self.admin_token = os.urandom(16).hex()
        kcm_token = os.urandom(16).hex()
        (d / "tokens.csv").write_text(
            f'{self.admin_token},{ADMIN_TOKEN_USER},uid-admin,"system:masters"\n'
            f"{kcm_token},{CONTROLLER_MANAGER_USER},uid-kcm\n"
        )
        etcd_port, etcd_peer, api_port, kcm_port = (free_port() for _ in range(4))
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            "etcd",
            [
                "etcd",
                *("--name", "test", "--data-dir", str(d / "etcd")),
                *("--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url),
                *("--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}"),
                *("--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}"),
                *("--initial-cluster", f"test=http://127.0.0.1:{etcd_peer}"),
                "--unsafe-no-fsync",  # a throw-away store: no disk flushes per write
                "--log-level=warn",
            ],
        )
        self._wait_healthy("etcd", f"{etcd_url}/health", 20)
        self.server = f"https://127.0.0.1:{api_port}"
        self._spawn(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                "--insecure-port=0",
                f"--tls-cert-file={d / 'server.crt'}",
                f"--tls-private-key-file={d / 'server.key'}",
                f"--client-ca-file={d / 'ca.crt'}",
                f"--token-auth-file={d / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={d / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                f"--service-account-issuer={ISSUER}",
                f"--api-audiences={ISSUER}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                # ttlSecondsAfterFinished (set by run_job) is alpha in 1.20: dropped without this
                "--feature-gates=TTLAfterFinished=true",
                "--cert-dir=" + str(d / "apiserver-certs"),
                "--v=1",
            ],
        )
        self._wait_healthy("kube-apiserver", f"{self.server}/readyz", 60, self.admin_token)
        write_kubeconfig(self.admin_kubeconfig, self.server, self.ca, self.admin_token, "admin")
        kcm_kubeconfig = d / "kcm.kubeconfig"
        write_kubeconfig(kcm_kubeconfig, self.server, self.ca, kcm_token, "kcm")
        self._spawn(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                "--port=0",
                "--leader-elect=false",
                f"--service-account-private-key-file={d / 'sa.key'}",
                f"--root-ca-file={d / 'ca.crt'}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={d / 'ca.crt'}",
                f"--cluster-signing-key-file={d / 'ca.key'}",
                f"--cert-dir={d / 'kcm-certs'}",
                # the controllers a rollback meets; no cloud, node IPAM or volume machinery
                # (no node lifecycle: a slow test run must not get the fake Node's pods evicted)
                "--controllers=deployment,replicaset,job,ttl-after-finished,garbagecollector,"
                "serviceaccount,serviceaccount-token,namespace",
                "--feature-gates=TTLAfterFinished=true",
                "--v=1",
            ],
        )
        self._wait_healthy("kube-controller-manager", f"https://127.0.0.1:{kcm_port}/healthz", 60)
        self.started_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop every process (TERM, then KILL after 10 s) and remove the directory."""
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def start_control_plane() -> ControlPlane:
    plane = ControlPlane(Path(tempfile.mkdtemp(prefix="rollback-bot-kube-")))
    try:
        return plane.start()
    except BaseException:
        plane.stop()
        raise
