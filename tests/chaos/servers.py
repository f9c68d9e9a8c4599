"""Servers and networks a chaos run owns: a throwaway PostgreSQL cluster and Redis it may stop
and restart, a network namespace a worker runs in (reaching the servers through veth pairs it
can cut), and a proxy that delays every byte it forwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from tests.support import services
from tests.support.polling import poll

PG_BIN = str(Path(services.PG_CTL).parent) if services.PG_CTL else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as the ``postgres`` user."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class Postgres:
    """A PostgreSQL cluster of its own in a temporary folder, listening on ``addresses``."""

    def __init__(self, addresses: Sequence[str] = ("127.0.0.1",)) -> None:
        if PG_BIN is None:
            raise RuntimeError("no PostgreSQL server programs (the Debian package postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="wfe-chaos-pg-"))
        self.folder.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self.addresses = list(addresses)
        subprocess.run(
            _as_server_user([f"{PG_BIN}/initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust"]),
            check=True,
            capture_output=True,
        )
        hosts = "".join(f"host all all {address}/32 trust\n" for address in self.addresses)
        peers = "host all all 10.0.0.0/8 trust\n"
        (self.data / "pg_hba.conf").write_text(f"local all all trust\n{hosts}{peers}")
        if os.geteuid() == 0:
            shutil.chown(self.data / "pg_hba.conf", "postgres")

    def url(self, host: str = "127.0.0.1", database: str = "postgres") -> str:
        return f"postgresql://postgres@{host}:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses={','.join(self.addresses)} "
            "-c max_connections=200 -c fsync=off -c synchronous_commit=off"
        )
        command = [f"{PG_BIN}/pg_ctl", "-D", str(self.data), "-l", str(self.folder / "pg.log"), "-w"]
        subprocess.run(_as_server_user([*command, "-o", options, *args]), check=True, capture_output=True)

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "restart")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


class Redis:
    """A Redis of its own, bound to ``addresses``, persisting nothing."""

    def __init__(self, addresses: Sequence[str] = ("127.0.0.1",)) -> None:
        if services.REDIS_SERVER is None:
            raise RuntimeError("no redis-server (the Debian package redis-server)")
        self.folder = Path(tempfile.mkdtemp(prefix="wfe-chaos-redis-"))
        self.port = free_port()
        self.addresses = list(addresses)
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, host: str = "127.0.0.1") -> str:
        return f"redis://{host}:{self.port}/0"

    def start(self) -> None:
        with (self.folder / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(services.REDIS_SERVER),
                    *("--port", str(self.port), "--bind", *self.addresses),
                    *(
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(self.folder),
                        "--protected-mode",
                        "no",
                    ),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        poll(lambda: services.answers("127.0.0.1", self.port), 20, "Redis to answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class RabbitMQ:
    """A RabbitMQ node of its own (its own name, port, data and configuration), which keeps its
    durable queues and persistent messages across a restart."""

    def __init__(self) -> None:
        if shutil.which("rabbitmq-server") is None:
            raise RuntimeError("no rabbitmq-server (the Debian package rabbitmq-server)")
        self.folder = Path(tempfile.mkdtemp(prefix="wfe-chaos-rabbitmq-"))
        self.port, self.dist_port = free_port(), free_port()
        self.node = f"wfechaos{self.port}@localhost"
        for sub in ("mnesia", "log"):
            (self.folder / sub).mkdir()
        (self.folder / "plugins").write_text("[].\n")
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        if os.geteuid() == 0:  # the server script runs the node as the rabbitmq user
            for path in [self.folder, *self.folder.rglob("*")]:
                shutil.chown(path, "rabbitmq")
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, host: str = "127.0.0.1") -> str:
        return f"amqp://guest:guest@{host}:{self.port}//"

    def start(self) -> None:
        env = {
            **os.environ,
            "RABBITMQ_CONF_ENV_FILE": str(self.folder / "none.env"),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "plugins"),
            "RABBITMQ_PID_FILE": str(self.folder / "pid"),
        }
        with (self.folder / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["rabbitmq-server"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        poll(lambda: services.answers("127.0.0.1", self.port), 90, "RabbitMQ to answer", interval=0.5)

    def stop(self) -> None:
        """A clean stop: SIGTERM to the node (its pid file names it), which writes its queues."""
        if self.process is None:
            return
        pid_file = self.folder / "pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None
        poll(lambda: not services.answers("127.0.0.1", self.port), 60, "RabbitMQ to stop", interval=0.5)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class Namespace:
    """A network namespace whose processes reach the host through one veth pair per link:
    link ``i`` joins host address 10.231.``i``.1 to the namespace's 10.231.``i``.2."""

    def __init__(self, name: str, links: int) -> None:
        self.name = name
        self.links = links
        self.created = False

    def host_address(self, link: int) -> str:
        return f"10.231.{link}.1"

    def _ip(self, *args: str, inside: bool = False) -> None:
        prefix = ["ip", "netns", "exec", self.name] if inside else []
        subprocess.run([*prefix, "ip", *args], check=True, capture_output=True)

    def create(self) -> None:
        self.destroy()  # (what a run killed before its end left)
        self._ip("netns", "add", self.name)
        self.created = True
        self._ip("link", "set", "lo", "up", inside=True)
        for link in range(self.links):
            host, inner = f"{self.name}-h{link}", f"{self.name}-n{link}"
            self._ip("link", "add", host, "type", "veth", "peer", "name", inner)
            self._ip("link", "set", inner, "netns", self.name)
            self._ip("addr", "add", f"{self.host_address(link)}/30", "dev", host)
            self._ip("link", "set", host, "up")
            self._ip("addr", "add", f"10.231.{link}.2/30", "dev", inner, inside=True)
            self._ip("link", "set", inner, "up", inside=True)

    def cut(self, link: int) -> None:
        """Packets stop crossing ``link`` (connections over it hang; new ones time out)."""
        self._ip("link", "set", f"{self.name}-n{link}", "down", inside=True)

    def mend(self, link: int) -> None:
        self._ip("link", "set", f"{self.name}-n{link}", "up", inside=True)

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def destroy(self) -> None:
        for link in range(self.links):
            subprocess.run(["ip", "link", "del", f"{self.name}-h{link}"], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        self.created = False


class DelayProxy:
    """Forwards TCP connections from ``listen`` to ``target``, holding each chunk ``delay``
    seconds in each direction (the kernel here has no netem: the latency is added in user
    space, per chunk, in order)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int], delay: float) -> None:
        self.listen, self.target, self.delay = listen, target, delay
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.AbstractServer | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                await asyncio.sleep(max(0.0, due - self.loop.time()))
                writer.write(chunk)
                await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(send())
        try:
            while chunk := await reader.read(65536):
                queue.put_nowait((self.loop.time() + self.delay, chunk))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((0.0, b""))
        with contextlib.suppress(ConnectionError, OSError):
            await sender

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    def start(self) -> None:
        self.thread.start()
        started = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._serve, *self.listen), self.loop)
        self.server = started.result(10)

    async def _shutdown(self) -> None:
        if self.server is not None:
            self.server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
