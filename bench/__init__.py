"""cognito-gateway's own benchmark: the gateway next to nginx, on 127.0.0.1, bounded in time.

``python -m bench`` (``make bench``) starts nginx as the upstream and as the reference proxy,
an aiohttp app for WebSockets and uploads, the local Cognito stand-in and the gateway, signs in
for real, and measures each scenario through the gateway and through nginx in interleaved
rounds: throughput, latency, CPU per unit of work over each server's process tree, and memory.
The result goes to ``bench/results/<UTC time>.json`` and is compared with the previous one.
See bench/README.md.
"""

from __future__ import annotations
