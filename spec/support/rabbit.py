"""A private RabbitMQ broker for tests: own port, own data dir, no systemd.

Starts the Debian ``rabbitmq-server`` as a plain background process bound to
127.0.0.1, waits until it answers the AMQP protocol header, and can be stopped,
restarted (same data dir, so durable queues and persistent messages survive) and
purged. Several brokers can run at once on different ports.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

from spec.support.ports import free_port, port_listening


def rabbit_sbin() -> str:
    """Directory holding ``rabbitmq-server`` (env ``RABBITMQ_SBIN`` overrides)."""
    env = os.environ.get("RABBITMQ_SBIN")
    if env:
        return env
    found = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin"))
    if not found:
        raise RuntimeError("rabbitmq-server is not installed (apt-get install -y rabbitmq-server)")
    return found[-1]


class RabbitBroker:
    """One isolated broker. Use as a context manager or call start()/stop()."""

    def __init__(self, datadir: str | os.PathLike[str], port: int | None = None) -> None:
        self.datadir = Path(datadir).resolve()
        self.port = port or free_port(companion_offset=20000)  # Erlang distribution: port + 20000
        self.node = f"rmq{self.port}@localhost"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        d = self.datadir
        env = dict(os.environ)
        env.update(
            HOME=str(d / "home"),
            RABBITMQ_CONF_ENV_FILE="/dev/null",
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(d / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_PID_FILE=str(d / "pid"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.port + 20000),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        env["PATH"] = rabbit_sbin() + os.pathsep + env.get("PATH", "")
        return env

    def _prepare(self) -> None:
        d = self.datadir
        for sub in ("mnesia", "log", "home"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        cookie = d / "home" / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(10).upper())
            cookie.chmod(0o400)
        (d / "enabled_plugins").write_text("[].\n")
        (d / "rabbitmq.conf").write_text(
            "loopback_users = none\n"
            "disk_free_limit.absolute = 10MB\n"
            "vm_memory_high_watermark.relative = 0.4\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )

    @property
    def pid(self) -> int | None:
        """The broker's launcher process (the Erlang VM runs as its child), or None when it is not running."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self, timeout: float = 90.0) -> Self:
        if self._proc and self._proc.poll() is None:
            return self
        self._prepare()
        if port_listening(self.port):
            raise RuntimeError(f"port {self.port} is already in use")
        with open(self.datadir / "stdout.log", "ab") as out:
            self._proc = subprocess.Popen(
                [os.path.join(rabbit_sbin(), "rabbitmq-server")],
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"broker exited during start-up; see {self.datadir}/stdout.log")
            if self._answers_amqp():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"broker did not become ready in {timeout}s; see {self.datadir}")

    def _answers_amqp(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                s.settimeout(3)
                data = s.recv(7)
                return len(data) == 7 and data[0] == 1
        except OSError:
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """Clean stop (SIGTERM to the whole process group), SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        # The Erlang VM may outlive the wrapper by a moment; wait for the port to close.
        deadline = time.monotonic() + timeout
        while port_listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> None:
        """Stop and start on the same port and data dir (durable state survives)."""
        self.stop()
        self.start()

    def purge(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.purge()
