"""Elasticsearch from Elastic's integration-test distribution, run with the machine's JDK.

Elasticsearch refuses to run as root, so when newsflow runs as root it starts the node as a
dedicated system user (``stack.es_user``, created on first use) that owns the node's directories.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import httpx

from pipeline.errors import StackError
from pipeline.settings import Settings
from pipeline.stack.maven import resolve
from pipeline.stack.process import tail
from pipeline.stack.service import DEPLOY_DIR, Service

__all__ = ["ElasticsearchService"]


def _default_java_home() -> str:
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if java is None:
        raise StackError("java not found: install a JDK 17+ (e.g. apt-get install openjdk-17-jre-headless)")
    return str(Path(java).resolve().parent.parent)


class ElasticsearchService(Service):
    name = "elasticsearch"
    marker = "org.elasticsearch.bootstrap.Elasticsearch"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # The node writes its own pid file (-p), so it sits in a directory the node's user owns.
        self.pid_file = self.home / "run" / "elasticsearch.pid"

    @property
    def port(self) -> int:
        return self.stack.es_port

    @property
    def version(self) -> str:
        return self.stack.elasticsearch_version

    @property
    def dist_dir(self) -> Path:
        return self.settings.cache_path / f"elasticsearch-{self.version}"

    @property
    def es_home(self) -> Path:
        return self.dist_dir / f"elasticsearch-{self.version}"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "newsflow-local.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def resolve(self) -> float:
        return resolve(
            DEPLOY_DIR / "elasticsearch" / "pom.xml",
            "dependency:unpack",
            {"es.version": self.version, "output.dir": str(self.dist_dir)},
            done=self.dist_dir / ".resolved",
            log_file=self.dist_dir.parent / f"elasticsearch-{self.version}-maven.log",
        )

    def _run_as(self) -> list[str]:
        """The prefix that drops root for the node, creating its user if needed ([] when not root)."""
        if os.geteuid() != 0:
            return []
        user = self.stack.es_user
        try:
            pwd.getpwnam(user)
        except KeyError:
            proc = subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0:
                raise StackError(f"cannot create user {user!r} to run Elasticsearch: {proc.stderr.strip()}") from None
        entry = pwd.getpwnam(user)
        for path in (self.es_home, self.home / "data", self.home / "logs", self.home / "run"):
            path.mkdir(parents=True, exist_ok=True)
            subprocess.run(["chown", "-R", f"{entry.pw_uid}:{entry.pw_gid}", str(path)], check=True)
        self._check_traversable(entry.pw_uid)
        runuser = shutil.which("runuser")
        if runuser is None:
            raise StackError("runuser not found (util-linux): needed to start Elasticsearch as a non-root user")
        return [runuser, "-u", user, "--"]

    def _check_traversable(self, uid: int) -> None:
        # The node's user must reach its directories: a data dir under /root (mode 700) is not.
        for parent in self.home.resolve().parents:
            st = parent.stat()
            if st.st_uid != uid and not st.st_mode & 0o001:
                raise StackError(
                    f"{parent} is not searchable by user {self.stack.es_user!r}, which runs Elasticsearch; "
                    "set NEWSFLOW_DATA_DIR to a directory outside it (e.g. /var/lib/newsflow)"
                )

    def launch(self) -> None:
        prefix = self._run_as()
        for sub in ("data", "logs", "run"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        java_home = self.stack.es_java_home or self.stack.java_home or _default_java_home()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ES_JAVA_HOME": java_home,
            # Without an explicit heap the node would take half of the machine's memory.
            "ES_JAVA_OPTS": f"-Xms{self.stack.es_heap} -Xmx{self.stack.es_heap}",
        }
        settings = {
            "cluster.name": "newsflow-local",
            "node.name": "newsflow-local",
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": str(self.stack.es_port),
            "transport.port": str(self.stack.es_transport_port),
            "path.data": str(self.home / "data"),
            "path.logs": str(self.home / "logs"),
            "xpack.security.enabled": "false",
            # A development node on a shared disk: never flip indices read-only on a full disk.
            "cluster.routing.allocation.disk.threshold_enabled": "false",
        }
        cmd = [*prefix, str(self.es_home / "bin" / "elasticsearch"), "-d", "-p", str(self.pid_file)]
        for key, value in settings.items():
            cmd += ["-E", f"{key}={value}"]
        # -d returns once the node has started (or failed); it writes the server's pid to -p.
        with self.out_file.open("ab") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=env, check=False, timeout=self.stack.start_timeout_s)
        if proc.returncode != 0:
            raise StackError(f"elasticsearch failed to start (exit {proc.returncode}): {self._last_error()}; "
                             f"see {self.log_file} and {self.out_file}")

    def ready(self) -> bool:
        try:
            resp = httpx.get(f"{self.url}/_cluster/health", timeout=3.0)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200 and resp.json().get("status") in ("yellow", "green")

    def running_version(self) -> str | None:
        try:
            resp = httpx.get(f"{self.url}/_nodes/_local", params={"filter_path": "nodes.*.version"}, timeout=3.0)
            nodes = resp.json().get("nodes", {})
        except (httpx.HTTPError, ValueError):
            return None
        return next((n.get("version") for n in nodes.values()), None)

    def _last_error(self) -> str:
        # Start-up errors go to the launcher's output, later ones to the node's log.
        for source in (self.out_file, self.log_file):
            lines = [ln for ln in tail(source, 200).splitlines() if "ERROR" in ln or "Exception" in ln]
            if lines:
                return lines[-1].strip()[:300]
        return super()._last_error()
