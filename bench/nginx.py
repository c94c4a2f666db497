"""Debian's nginx as the upstream app and as the reference proxy, configured per run.

The upstream answers ``/`` with a fixed 100-byte body, ``/64k`` with a 64 KiB file and
``/download`` with a 100 MB file (sendfile); ``/bench-callback`` is only a landing place for the
code flow that mints bearer tokens. The reference proxy is a plain nginx reverse proxy: ``/``
and ``/64k`` to the upstream over a keep-alive pool (buffered, nginx's default); ``/download``
from the upstream, and ``/ws`` and ``/upload`` to the aiohttp app, streamed unbuffered through
64 KiB buffers as the gateway streams them (nginx's defaults would spool 100 MB to temporary
files, and stream through one 4-16 KiB buffer when unbuffered). Both run one worker with the
access log off, like the peers harness they are compared with. Configs, pid files and
temporary files live in the run directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SMALL_BODY = b"ok: fixed 100-byte upstream response for the cognito-gateway benchmark".ljust(
    99, b".") + b"\n"
MEDIUM_BYTES = 64 * 1024
DOWNLOAD_BYTES = 100_000_000
NGINX = "/usr/sbin/nginx"


class NginxConfigError(RuntimeError):
    """nginx refused a config the bench wrote (or is missing)."""


@dataclass(frozen=True)
class NginxPorts:
    """The ports of one run: the upstream, the reference proxy, and the aiohttp app."""

    upstream: int
    proxy: int
    app: int


def nginx_binary() -> str:
    """The nginx executable: Debian's, else the first on PATH."""
    if Path(NGINX).exists():
        return NGINX
    found = shutil.which("nginx")
    if found is None:
        raise NginxConfigError("nginx is not installed (Debian: apt-get install nginx-light)")
    return found


def _common(run_dir: Path, name: str) -> str:
    # As root, nginx would run its worker as "nobody", which may not read the run directory.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    tmp = run_dir / "tmp" / name
    return f"""{user}worker_processes 1;
daemon off;
master_process on;
pid {run_dir}/{name}.pid;
error_log {run_dir}/logs/{name}.error.log warn;
worker_rlimit_nofile 8192;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
"""


def upstream_config(run_dir: Path, ports: NginxPorts) -> str:
    """nginx.conf of the upstream app."""
    www = run_dir / "www"
    return _common(run_dir, "upstream") + f"""    server {{
        listen 127.0.0.1:{ports.upstream} backlog=4096;
        default_type text/plain;
        location = /64k {{ alias {www}/64k; default_type application/octet-stream; }}
        location = /download {{ alias {www}/download; default_type application/octet-stream; }}
        location / {{ return 200 "{SMALL_BODY.decode().rstrip()}\\n"; }}
    }}
}}
"""


def proxy_config(run_dir: Path, ports: NginxPorts) -> str:
    """nginx.conf of the reference proxy."""
    return _common(run_dir, "proxy") + f"""    upstream backend {{
        server 127.0.0.1:{ports.upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    upstream app {{
        server 127.0.0.1:{ports.app};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{ports.proxy} backlog=4096;
        client_max_body_size 0;
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        location / {{
            proxy_pass http://backend;
            proxy_set_header Connection "";
        }}
        location = /download {{
            proxy_pass http://backend;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_buffer_size 64k;
            proxy_buffers 4 64k;
            proxy_busy_buffers_size 128k;
        }}
        location = /upload {{
            proxy_pass http://app;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            client_body_buffer_size 64k;
            proxy_buffering off;
        }}
        location = /ws {{
            proxy_pass http://app;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def prepare(run_dir: Path, ports: NginxPorts) -> tuple[list[str], list[str]]:
    """Write both configs and the upstream's files; return the two nginx command lines.

    Each config is checked with ``nginx -t`` first, so a broken one fails here, with nginx's
    own message, rather than as a service that never answers.
    """
    www = run_dir / "www"
    www.mkdir(parents=True, exist_ok=True)
    (www / "64k").write_bytes(bytes(range(256)) * (MEDIUM_BYTES // 256))
    download = www / "download"
    if not download.exists() or download.stat().st_size != DOWNLOAD_BYTES:
        with download.open("wb") as f:
            f.truncate(DOWNLOAD_BYTES)
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    binary = nginx_binary()
    commands = []
    for name, text in (("upstream", upstream_config(run_dir, ports)),
                       ("proxy", proxy_config(run_dir, ports))):
        (run_dir / "tmp" / name).mkdir(parents=True, exist_ok=True)
        conf = run_dir / f"nginx-{name}.conf"
        conf.write_text(text, encoding="utf-8")
        argv = [binary, "-p", str(run_dir), "-e", str(run_dir / "logs" / f"{name}.error.log"),
                "-c", str(conf)]
        check = subprocess.run([*argv, "-t", "-q"], capture_output=True, text=True,  # noqa: S603
                               check=False, timeout=30)
        if check.returncode != 0:
            raise NginxConfigError(f"nginx rejects {conf}: {check.stderr.strip()}")
        commands.append(argv)
    return commands[0], commands[1]


def version() -> str:
    """`nginx -v`'s version, e.g. "1.22.1"."""
    out = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True,  # noqa: S603
                         check=False, timeout=10)
    return out.stderr.strip().rpartition("/")[2]
