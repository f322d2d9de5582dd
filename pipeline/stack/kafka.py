"""Apache Kafka in KRaft mode (one node is broker and controller), run from Maven-resolved jars."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path
from string import Template

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from pipeline.errors import StackError
from pipeline.stack.maven import resolve
from pipeline.stack.process import port_open
from pipeline.stack.service import DEPLOY_DIR, Service

__all__ = ["KafkaService"]

_JVM_OPTS = [
    # What bin/kafka-server-start.sh uses, minus JMX.
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]


def _java(java_home: str | None) -> str:
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise StackError("java not found: install a JDK 17+ (e.g. apt-get install openjdk-17-jre-headless)")
    return java


class KafkaService(Service):
    name = "kafka"
    marker = "kafka.Kafka"

    @property
    def port(self) -> int:
        return self.stack.kafka_port

    @property
    def version(self) -> str:
        return self.stack.kafka_version

    @property
    def lib_dir(self) -> Path:
        return self.settings.cache_path / f"kafka-{self.version}" / "lib"

    def resolve(self) -> float:
        return resolve(
            DEPLOY_DIR / "kafka" / "pom.xml",
            "dependency:copy-dependencies",
            {"kafka.version": self.version, "output.dir": str(self.lib_dir)},
            done=self.lib_dir.parent / ".resolved",
            log_file=self.lib_dir.parent / "maven.log",
        )

    def _base_cmd(self) -> list[str]:
        log4j = DEPLOY_DIR / "kafka" / "log4j2.properties"
        return [
            _java(self.stack.java_home),
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp",
            f"{self.lib_dir}/*",
        ]

    def _write_config(self) -> Path:
        template = Template((DEPLOY_DIR / "kafka" / "server.properties.template").read_text())
        config = self.home / "server.properties"
        config.write_text(
            template.substitute(
                port=self.stack.kafka_port,
                controller_port=self.stack.kafka_controller_port,
                log_dirs=self.data_dir,
            )
        )
        return config

    def _format_storage(self, config: Path) -> None:
        """Format the KRaft metadata log on first use (``kafka-storage.sh format``)."""
        if (self.data_dir / "meta.properties").exists():
            return
        # Kafka cluster ids are base64url UUIDs; a leading '-' would read as a CLI flag.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=").replace("-", "A")
        cmd = [*self._base_cmd(), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config),
               "--ignore-formatted"]
        with self.out_file.open("ab") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            raise StackError(f"kafka storage format failed (exit {proc.returncode}); see {self.out_file}")

    def launch(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self._format_storage(config)
        heap = self.stack.kafka_heap
        cmd = [*self._base_cmd()[:1], f"-Xms{heap}", f"-Xmx{heap}", *_JVM_OPTS, *self._base_cmd()[1:],
               "kafka.Kafka", str(config)]
        with self.out_file.open("ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.pid_file.write_text(str(proc.pid))

    def ready(self) -> bool:
        """A metadata request lists broker 1."""
        # kafka-python retries a refused bootstrap for many seconds: ask only once the port listens.
        if not port_open(self.port):
            return False
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=f"127.0.0.1:{self.port}",
                request_timeout_ms=3000,
                client_id="newsflow-stack",
            )
        except (KafkaError, OSError, ValueError):
            return False
        try:
            return bool(admin.describe_cluster().get("brokers"))
        except (KafkaError, OSError, ValueError):
            return False
        finally:
            admin.close()
