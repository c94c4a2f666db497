"""`cognito-gateway run --workers N`: N processes on one port, a supervisor, one /metrics.

- `supervisor`: the parent process; starts, restarts and stops the workers, forwards SIGHUP,
  serves /metrics.
- `worker`: a worker process: the ordinary server on a shared port (SO_REUSEPORT).
- `metrics`: the workers' metrics summed (prometheus_client's multiprocess mode).
- `backoff`: the restart delay of a worker in a crash loop.

With N = 1 none of this runs: `cognito-gateway run` serves in its own process.
"""

from __future__ import annotations

from gateway.workers.supervisor import LIFELINE_FLAG, run_supervisor
from gateway.workers.worker import run_worker

__all__ = ["LIFELINE_FLAG", "run_supervisor", "run_worker"]
