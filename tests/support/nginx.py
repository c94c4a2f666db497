"""Debian's nginx as a real server in tests, on a free 127.0.0.1 port, in a temporary prefix.

```python
nginx = start_nginx("location / { return 200 'hi'; }")
try:
    ...  # nginx.url, nginx.port, nginx.accepts()
finally:
    nginx.stop()
```

`conf_body` is the inside of the tested `server { }` block (the launcher adds `listen`, with
`listen_options` such as "ssl" after the address); `http_conf` goes into the `http { }` block
(an `upstream`, a `map`, ...). Paths in either must be
absolute (a pytest `tmp_path` is fine). nginx runs in the foreground as one process
(`daemon off; master_process off;`), writes its pid, logs and temp files under its own temporary
directory, and a second server on another port serves `stub_status` so that `accepts()` can
count the TCP connections the tested server accepted (the launcher's own are subtracted).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.demo.stack import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
_CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{http_conf}
    server {{
        listen 127.0.0.1:{port} {listen_options};
{conf_body}
    }}
    server {{
        listen 127.0.0.1:{status_port};
        location = /status {{ stub_status; }}
    }}
}}
"""
_ACCEPTS = re.compile(rb"server accepts handled requests\s+(\d+)")


@dataclass
class RunningNginx:
    """A started nginx: its port and URL, its counters, and how to stop it."""

    port: int
    status_port: int
    prefix: Path
    process: subprocess.Popen[bytes]
    tls: bool = False
    _own_connections: int = field(default=0)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def accepts(self) -> int:
        """TCP connections nginx has accepted from others (its `accepts` counter)."""
        status = self._status()
        assert status is not None, f"nginx stub_status did not answer:\n{self.error_log()}"
        found = _ACCEPTS.search(status)
        assert found, f"unexpected stub_status answer: {status!r}"
        return int(found.group(1)) - self._own_connections

    def error_log(self) -> str:
        log = self.prefix / "error.log"
        return log.read_text(errors="replace")[-4000:] if log.exists() else ""

    def stop(self) -> None:
        """Stop nginx (SIGTERM, then SIGKILL after 5 s) and remove its directory."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.prefix, ignore_errors=True)

    def _status(self) -> bytes | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.status_port), timeout=2)
        except OSError:
            return None
        self._own_connections += 1
        answer = b""
        with sock:
            try:
                sock.sendall(b"GET /status HTTP/1.0\r\nHost: status\r\n\r\n")
                while chunk := sock.recv(4096):
                    answer += chunk
            except OSError:  # a timeout included: not answering yet is not ready
                return None
        return answer


def start_nginx(conf_body: str, *, http_conf: str = "", listen_options: str = "",
                within: float = 10.0) -> RunningNginx:
    """Start nginx serving `conf_body` on a free loopback port; fail loudly if it does not come up.

    A port taken between choosing and binding it (another test grabbed it) is retried with new
    ports, up to three times.
    """
    problems = []
    for _ in range(3):
        prefix = Path(tempfile.mkdtemp(prefix="nginx-"))
        port, status_port = free_port(), free_port()
        (prefix / "nginx.conf").write_text(_CONFIG.format(
            prefix=prefix, port=port, status_port=status_port, http_conf=http_conf,
            conf_body=conf_body, listen_options=listen_options))
        process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-e", str(prefix / "error.log"),
             "-c", str(prefix / "nginx.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        nginx = RunningNginx(port=port, status_port=status_port, prefix=prefix, process=process,
                             tls="ssl" in listen_options.split())
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and process.poll() is None:
            if nginx._status() is not None:
                return nginx
            time.sleep(0.02)
        log = nginx.error_log()
        nginx.stop()
        if "Address already in use" not in log:
            raise RuntimeError(f"nginx did not start within {within} s:\n{log}")
        problems.append(log)
    raise RuntimeError("nginx found no free port in three tries:\n" + "\n".join(problems))
