"""Measure the gateway's memory and CPU under a bounded load, to size the sidecar's resources.

    .venv/bin/python deploy/kubernetes/measure_sidecar.py [--seconds 20] [--connections 16]

Starts, on 127.0.0.1 only: the dev IdP (`cognito-gateway dev-idp`), the demo upstream, and
`cognito-gateway run` (one process, the container's command) with the cookie store and the
access log on; signs in as the demo user like a browser; then loads one authenticated page
with wrk (one thread, fixed connections, fixed duration) and reads the gateway's
/proc/<pid>/status (VmRSS, VmHWM) and /proc/<pid>/stat (utime + stime). Prints the figures
that deploy/kubernetes/deployment.yaml quotes. Everything it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
from cryptography.fernet import Fernet
from yarl import URL

from gateway.demo.stack import free_port

BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")
UPSTREAM = (
    "import sys; from aiohttp import web; from gateway.demo.upstream import create_upstream_app;"
    " web.run_app(create_upstream_app(), host='127.0.0.1', port=int(sys.argv[1]),"
    " print=None, access_log=None)"
)
POOL = """pool_id = "local-1_DevPool01"
[[users]]
username = "demo"
password = "demo-password-1"
email = "demo@example.com"
email_verified = true
groups = ["demo-users"]
[[clients]]
client_id = "demo-client"
client_secret = "demo-client-secret"
callback_urls = ["{gateway}/oauth2/callback"]
logout_urls = ["{gateway}/oauth2/signed_out"]
"""


def status_kib(pid: int, field: str) -> int:
    """A `kB` field of /proc/<pid>/status, in KiB."""
    text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {field} in /proc/{pid}/status")
    return int(match.group(1))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def wait_for(url: str, deadline_seconds: float = 20.0) -> None:
    """Poll `url` until it answers 200; fail loudly at the deadline."""
    deadline = time.monotonic() + deadline_seconds
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer 200 within {deadline_seconds} s")
            await asyncio.sleep(0.1)


class _Csrf(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.csrf = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form" and found.get("name") == "cognitoSignInForm":
            self.action = found.get("action") or ""
        if tag == "input" and found.get("name") == "_csrf":
            self.csrf = found.get("value") or ""


async def sign_in(gateway: str, idp: str) -> str:
    """Sign in through the hosted-UI form; the gateway's session cookies as a Cookie header."""
    jar = aiohttp.CookieJar(unsafe=True)
    # A browser navigation: without text/html the gateway answers 401 instead of redirecting.
    browser = {"Accept": "text/html"}
    async with aiohttp.ClientSession(cookie_jar=jar, headers=browser) as http:
        async with http.get(f"{gateway}/") as page:
            form = _Csrf()
            form.feed(await page.text())
        credentials = {"_csrf": form.csrf, "username": "demo", "password": "demo-password-1"}
        async with http.post(f"{idp}{form.action}", data=credentials) as landed:
            if landed.status != 200 or landed.url.path != "/":
                raise RuntimeError(f"sign-in ended at {landed.status} {landed.url}")
        cookies = jar.filter_cookies(URL(gateway))
        return "; ".join(f"{k}={m.value}" for k, m in cookies.items()
                         if k.startswith("_cognito_gateway"))


async def measure(seconds: int, connections: int) -> None:
    """Start the three processes, sign in, load the page for `seconds` and print the figures."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    ports = {name: free_port() for name in ("gateway", "idp", "upstream")}
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    idp = f"http://127.0.0.1:{ports['idp']}"
    with tempfile.TemporaryDirectory() as tmp:
        pool = Path(tmp) / "pool.toml"
        pool.write_text(POOL.format(gateway=gateway), encoding="utf-8")
        env = os.environ | {
            "GATEWAY_SERVER_LISTEN": f"127.0.0.1:{ports['gateway']}",
            "GATEWAY_SERVER_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
            "GATEWAY_SERVER_PUBLIC_URL": gateway,
            "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{ports['upstream']}",
            "GATEWAY_COGNITO_ISSUER": f"{idp}/local-1_DevPool01",
            "GATEWAY_COGNITO_DOMAIN": idp,
            "GATEWAY_COGNITO_CLIENT_ID": "demo-client",
            "GATEWAY_COGNITO_CLIENT_SECRET": "demo-client-secret",
            "GATEWAY_SESSION_SECRET": Fernet.generate_key().decode(),
            "GATEWAY_SESSION_COOKIE_SECURE": "false",
            "GATEWAY_HEADERS_SETS": "x-auth-request,alb",
        }
        procs: list[asyncio.subprocess.Process] = []

        async def start(*argv: str, environ: dict[str, str] | None = None) -> int:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=environ, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
            procs.append(proc)
            return proc.pid

        try:
            await start(str(BIN / "cognito-gateway"), "dev-idp", "--port", str(ports["idp"]),
                        "--config", str(pool))
            await start(sys.executable, "-c", UPSTREAM, str(ports["upstream"]))
            await wait_for(f"{idp}/local-1_DevPool01/.well-known/openid-configuration")
            pid = await start(str(BIN / "cognito-gateway"), "run", environ=env)
            await wait_for(f"{gateway}/ready")
            idle_rss = status_kib(pid, "VmRSS")
            cookie = await sign_in(gateway, idp)
            cpu_before = cpu_seconds(pid)
            run = await asyncio.create_subprocess_exec(
                wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "-H", f"Cookie: {cookie}",
                f"{gateway}/hello", stdout=asyncio.subprocess.PIPE)
            peak_rss = 0
            while run.returncode is None:
                peak_rss = max(peak_rss, status_kib(pid, "VmRSS"))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.wait(), 0.5)
            output = (await run.communicate())[0].decode()
            cpu = cpu_seconds(pid) - cpu_before
            after_rss, hwm = status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM")
        finally:
            for proc in reversed(procs):
                if proc.returncode is None:
                    proc.terminate()
                await asyncio.wait_for(proc.wait(), 30)
    total = re.search(r"(\d+) requests in", output)
    if total is None:
        raise RuntimeError(f"unexpected wrk output: {output}")
    requests = int(total.group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    print(f"load: wrk -t1 -c{connections} -d{seconds}s, {requests} requests "
          f"({requests / seconds:.0f}/s), non-2xx: {bad.group(1) if bad else 0}")
    print(f"VmRSS idle (ready, before sign-in): {idle_rss / 1024:.1f} MiB")
    print(f"VmRSS peak under load (0.5 s samples): {peak_rss / 1024:.1f} MiB")
    print(f"VmRSS after load: {after_rss / 1024:.1f} MiB; VmHWM: {hwm / 1024:.1f} MiB")
    print(f"CPU: {cpu:.2f} s over {seconds} s = {cpu / seconds:.2f} cores; "
          f"{cpu / requests * 1e6:.0f} us per request")


def main() -> None:
    """The command line: `--seconds` of load over `--connections` connections."""
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(measure(args.seconds, args.connections))


if __name__ == "__main__":
    main()
