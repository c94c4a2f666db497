"""Real redis-server processes for tests: standalone, Sentinel and Cluster, on loopback.

Each launcher runs Debian's `redis-server` (a sentinel is the same binary with `--sentinel`)
on free 127.0.0.1 ports inside a directory the test owns, with persistence off and in the
foreground, and waits for readiness with a deadline that fails loudly with the server's log:

* :class:`RedisServer`: one server; `stop()`, `kill()`, `restart()` (same port), `pause()`
  (SIGSTOP: a server that accepts connections but never answers) and `resume()`.
* :class:`RedisSentinelSet`: a master, its replica and three sentinels; `kill_master()` then
  `wait_for_failover()` polls the sentinels until they name a promoted master.
* :class:`RedisClusterSet`: three masters joined by `redis-cli --cluster create`.

Everything is synchronous so that module-scoped fixtures can use it; a test that must keep
traffic flowing while it waits runs the wait in a thread (`asyncio.to_thread`). `close()` kills
every process a launcher started, whatever state a failing test left it in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.demo.stack import free_port
from tests.support.certificates import TlsFiles

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

READY_WITHIN = 15.0
POLL_INTERVAL = 0.02
LOOPBACK = "127.0.0.1"
NO_RETRY = Retry(NoBackoff(), 0)  # the polling loops retry; each check answers within 1 s

__all__ = ["RedisClusterSet", "RedisProcess", "RedisSentinelSet", "RedisServer", "TlsFiles",
           "redis_binary", "wait_until"]


def redis_binary(name: str = "redis-server") -> str:
    """The path of a Redis executable; fails with the fix when it is missing."""
    path = shutil.which(name)
    assert path, f"{name} is missing: run scripts/install-test-deps.sh"
    return path


def wait_until(check: Callable[[], bool], what: str, within: float,
               describe: Callable[[], str] = lambda: "") -> float:
    """Poll `check` until it is true; return the seconds it took, or fail naming `what`.

    Redis errors raised by `check` count as "not yet".
    """
    started = time.monotonic()
    deadline = started + within
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return time.monotonic() - started
        time.sleep(POLL_INTERVAL)
    raise AssertionError(f"{what} not reached within {within} s\n{describe()}")


class RedisProcess:
    """One redis-server process (a server or a sentinel) on a fixed loopback port.

    The port survives `stop()`/`start()`, so clients configured with it reconnect to the
    restarted process. Output goes to `<directory>/<name>.log`, appended across restarts.
    """

    def __init__(self, name: str, directory: Path, argv: Sequence[str]) -> None:
        self.name = name
        self.directory = directory
        self.argv = list(argv)
        self.log = directory / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Launch the process (without waiting for it to answer)."""
        assert self._process is None, f"{self.name} is already running"
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(self.argv, cwd=self.directory, stdout=out,
                                             stderr=subprocess.STDOUT)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def alive(self) -> bool:
        """True while running; fails loudly, with the log, once the process has exited."""
        assert self.running, f"{self.name} is not running\n{self.describe()}"
        return True

    def send(self, signum: signal.Signals) -> None:
        """Send `signum` to the running process."""
        assert self._process is not None, f"{self.name} is not running"
        self._process.send_signal(signum)

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, but nothing is ever answered."""
        self.send(signal.SIGSTOP)

    def resume(self) -> None:
        self.send(signal.SIGCONT)

    def stop(self) -> None:
        """Terminate gracefully (SIGTERM); SIGKILL if it takes more than 10 s."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Kill at once (SIGKILL): open connections are reset, nothing is flushed."""
        self._end(signal.SIGKILL)

    def _end(self, signum: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            process.send_signal(signum)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def describe(self) -> str:
        """The exit status and the end of the log, for failure messages."""
        status = "running" if self.running else (
            f"exited {self._process.returncode}" if self._process else "not started")
        text = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        return f"--- {self.name} ({status}) ---\n{text}"


def _server_argv(config: Path, port: int, extra: Sequence[str]) -> list[str]:
    return [redis_binary(), str(config), "--port", str(port), "--bind", LOOPBACK, "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", ".", *extra]


def _private_config(path: Path, lines: Sequence[str]) -> Path:
    """A config file only its owner can read: passwords stay off the command line (ps)."""
    path.touch(mode=0o600)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


class RedisServer:
    """A standalone redis-server, optionally with a password, a unix socket and TLS.

    `url()`, `unix_url()` and `tls_url()` carry the password; `admin()` is a synchronous
    client for the test's own checks.
    """

    def __init__(self, directory: Path, *, name: str = "redis", password: str | None = None,
                 unix_socket: bool = False, tls: TlsFiles | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.socket_path = directory / f"{name}.sock" if unix_socket else None
        self.tls = tls
        self.tls_port = free_port() if tls else None
        extra = list(extra_args)
        config = _private_config(directory / f"{name}.conf", [
            f"requirepass {password}", f"masterauth {password}"] if password else [])
        if self.socket_path:
            extra += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        if tls:
            extra += ["--tls-port", str(self.tls_port), "--tls-cert-file", str(tls.cert),
                      "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca),
                      "--tls-auth-clients", "no"]
        self.process = RedisProcess(name, directory, _server_argv(config, self.port, extra))

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _userinfo(self) -> str:
        return f":{self.password}@" if self.password else ""

    def url(self, db: int = 0) -> str:
        return f"redis://{self._userinfo()}{self.address}/{db}"

    def unix_url(self, db: int = 0) -> str:
        assert self.socket_path, "started without unix_socket=True"
        return f"unix://{self._userinfo()}{self.socket_path}?db={db}"

    def tls_url(self, db: int = 0) -> str:
        assert self.tls, "started without tls"
        return (f"rediss://{self._userinfo()}{LOOPBACK}:{self.tls_port}/{db}"
                f"?ssl_ca_certs={self.tls.ca}")

    def admin(self, **kwargs: Any) -> redis.Redis:
        """A synchronous client for checks made by the test itself (short timeouts)."""
        return redis.Redis(host=LOOPBACK, port=self.port, password=self.password,
                           socket_timeout=1.0, socket_connect_timeout=1.0, retry=NO_RETRY,
                           **kwargs)

    def start(self, within: float = READY_WITHIN) -> None:
        """Start and wait until it answers PING; fail at once if it exits (a taken port)."""
        self.process.start()
        with self.admin() as client:
            wait_until(lambda: self.process.alive() and bool(client.ping()),
                       f"{self.process.name} answering PING", within, self.process.describe)

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def restart(self, within: float = READY_WITHIN) -> None:
        """Stop, then start again on the same port (its data is gone: persistence is off)."""
        self.process.stop()
        self.start(within)

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, but nothing is ever answered."""
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()

    def close(self) -> None:
        self.process.kill()


class RedisSentinelSet:
    """A master, one replica and three sentinels monitoring them as `master_name`.

    `down_after_ms` and `failover_timeout_ms` are small so a failover takes seconds. With a
    password, the data nodes require it and the sentinels authenticate with it; the sentinels
    themselves need none.
    """

    def __init__(self, directory: Path, *, password: str | None = None,
                 master_name: str = "mymaster", down_after_ms: int = 1000,
                 failover_timeout_ms: int = 3000) -> None:
        self.directory = directory
        self.master_name = master_name
        self.password = password
        # Either node may be master after a failover; neither delays a full sync by 5 s.
        no_delay = ["--repl-diskless-sync-delay", "0"]
        self.master = RedisServer(directory / "master", name="master", password=password,
                                  extra_args=no_delay)
        self.replica = RedisServer(
            directory / "replica", name="replica", password=password,
            extra_args=[*no_delay, "--replicaof", LOOPBACK, str(self.master.port)])
        self.nodes = [self.master, self.replica]
        self.sentinels: list[RedisProcess] = []
        self.sentinel_ports: list[int] = []
        for index in range(3):
            port = free_port()
            folder = directory / f"sentinel-{index}"
            folder.mkdir(parents=True)
            lines = [
                f"sentinel monitor {master_name} {LOOPBACK} {self.master.port} 2",
                f"sentinel down-after-milliseconds {master_name} {down_after_ms}",
                f"sentinel failover-timeout {master_name} {failover_timeout_ms}",
                f"sentinel parallel-syncs {master_name} 1",
            ]
            if password:
                lines.append(f"sentinel auth-pass {master_name} {password}")
            config = _private_config(folder / "sentinel.conf", lines)
            self.sentinels.append(RedisProcess(f"sentinel-{index}", folder, [
                redis_binary(), str(config), "--sentinel", "--port", str(port),
                "--bind", LOOPBACK, "--daemonize", "no"]))
            self.sentinel_ports.append(port)

    @property
    def sentinel_addresses(self) -> list[str]:
        """The sentinels as `host:port`, the form of `session.redis_sentinels`."""
        return [f"{LOOPBACK}:{port}" for port in self.sentinel_ports]

    def url(self, db: int = 0) -> str:
        """A redis_url for Sentinel mode: its password and db apply; its host is ignored."""
        userinfo = f":{self.password}@" if self.password else ""
        return f"redis://{userinfo}{LOOPBACK}/{db}"

    def _sentinel_client(self, port: int) -> redis.Redis:
        return redis.Redis(host=LOOPBACK, port=port, socket_timeout=1.0,
                           socket_connect_timeout=1.0, retry=NO_RETRY, decode_responses=True)

    def master_known_by(self, port: int) -> tuple[str, int] | None:
        """The master address the sentinel on `port` names, or None if it names none."""
        with self._sentinel_client(port) as client:
            found = client.sentinel_get_master_addr_by_name(self.master_name)
        return (str(found[0]), int(found[1])) if found else None

    def start(self, within: float = READY_WITHIN) -> None:
        """Start the data nodes, then the sentinels; wait until every sentinel sees the
        master up, the replica up and its two peers (a failover needs their votes)."""
        self.master.start(within)
        self.replica.start(within)
        with self.replica.admin(decode_responses=True) as client:
            wait_until(lambda: client.info("replication").get("master_link_status") == "up",
                       "replica in sync", within, self.describe)
        for sentinel in self.sentinels:
            sentinel.start()
        for port in self.sentinel_ports:
            wait_until(partial(self._sentinel_sees_all, port),
                       f"sentinel {port} seeing master, replica and peers", within, self.describe)

    def _sentinel_sees_all(self, port: int) -> bool:
        for sentinel in self.sentinels:
            sentinel.alive()
        with self._sentinel_client(port) as client:
            master = client.sentinel_master(self.master_name)
            replicas = client.sentinel_slaves(self.master_name)
        return (master["is_master"] and not master["is_sdown"]
                and master["num-other-sentinels"] == len(self.sentinels) - 1
                and any(r["port"] == self.replica.port and not r["is_sdown"]
                        for r in replicas))

    def current_master(self) -> RedisServer:
        """The data node the first sentinel names as master."""
        address = self.master_known_by(self.sentinel_ports[0])
        assert address, "no sentinel names a master"
        return next(node for node in self.nodes if node.port == address[1])

    def kill_master(self) -> RedisServer:
        """SIGKILL the current master; return it."""
        master = self.current_master()
        master.kill()
        return master

    def wait_for_failover(self, old: RedisServer, within: float = 30.0) -> float:
        """Wait until every sentinel names a master other than `old` and that node says
        role:master; return the seconds waited."""

        def promoted() -> bool:
            named = {self.master_known_by(port) for port in self.sentinel_ports}
            if len(named) != 1 or None in named or (LOOPBACK, old.port) in named:
                return False
            (address,) = named
            assert address is not None
            node = next(n for n in self.nodes if n.port == address[1])
            with node.admin(decode_responses=True) as client:
                return bool(client.info("replication").get("role") == "master")

        return wait_until(promoted, "a promoted master", within, self.describe)

    def describe(self) -> str:
        parts = [node.process.describe() for node in self.nodes]
        parts += [sentinel.describe() for sentinel in self.sentinels]
        return "\n".join(parts)

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.kill()
        for node in self.nodes:
            node.close()


class RedisClusterSet:
    """Three masters (no replicas) forming one Redis Cluster over all 16384 slots.

    Each node gets two free ports: its client port and its cluster bus port (`cluster-port`,
    Redis 7), so nothing assumes port + 10000 is free.
    """

    def __init__(self, directory: Path, *, masters: int = 3, password: str | None = None,
                 node_timeout_ms: int = 2000) -> None:
        self.directory = directory
        self.password = password
        self.nodes = [
            RedisServer(directory / f"node-{index}", name=f"node-{index}", password=password,
                        extra_args=["--cluster-enabled", "yes", "--cluster-config-file",
                                    "nodes.conf", "--cluster-port", str(free_port()),
                                    "--cluster-node-timeout", str(node_timeout_ms)])
            for index in range(masters)]

    def url(self) -> str:
        """A redis_url naming the first node (any one is enough to discover the rest)."""
        return self.nodes[0].url()

    def start(self, within: float = 30.0) -> float:
        """Start the nodes, join them, wait for cluster_state:ok everywhere; return seconds."""
        started = time.monotonic()
        for node in self.nodes:
            node.start()
        command = [redis_binary("redis-cli"), "--cluster", "create",
                   *(node.address for node in self.nodes), "--cluster-replicas", "0",
                   "--cluster-yes"]
        env = dict(os.environ)
        if self.password:
            env["REDISCLI_AUTH"] = self.password  # not on the command line (ps shows it)
        created = subprocess.run(command, capture_output=True, env=env, timeout=within,
                                 check=False)
        assert created.returncode == 0, (
            f"redis-cli --cluster create failed:\n{created.stdout.decode(errors='replace')}"
            f"{created.stderr.decode(errors='replace')}")
        for node in self.nodes:
            with node.admin(decode_responses=True) as client:
                wait_until(partial(self._node_sees_cluster, client),
                           f"{node.process.name} cluster_state:ok", within, self.describe)
        return time.monotonic() - started

    def _node_sees_cluster(self, client: redis.Redis) -> bool:
        info = client.cluster("INFO")  # parsed by redis-py into a dict of str
        return (info.get("cluster_state") == "ok"
                and str(info.get("cluster_known_nodes")) == str(len(self.nodes)))

    def key_slot(self, key: str) -> int:
        """The slot the cluster itself computes for `key` (CLUSTER KEYSLOT)."""
        with self.nodes[0].admin() as client:
            return int(client.cluster("KEYSLOT", key))

    def owner(self, key: str) -> int:
        """The client port of the node serving `key`'s slot."""
        slot = self.key_slot(key)
        with self.nodes[0].admin() as client:
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(primary[1])
        raise AssertionError(f"slot {slot} is not served")

    def describe(self) -> str:
        return "\n".join(node.process.describe() for node in self.nodes)

    def close(self) -> None:
        for node in self.nodes:
            node.close()
