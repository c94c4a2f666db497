"""`make soak`: a bounded load-with-faults run proving that users with valid tokens never see
an error.

Signed-in users browse through the gateway at a fixed rate while the token endpoint fails and
slows down, the IdP rotates its signing keys right after a burst of tokens with unknown kids,
the upstream is killed and restarted (and, with `--workers 2`, a gateway worker is killed).
The report says how every request ended and checks the guarantees: no sign-in prompt while a
refresh token is valid, no error while the tokens are valid, RSS stable after warm-up.
See docs/reliability.md ("Soak run") and `python -m tests.soak --help`.

Modules: `plan` (the knobs), `schedule` (when each fault happens), `stack` and `processes`
(the stand-in, upstream, gateway and, with the Redis store, redis-server as subprocesses),
`upstream` (the app behind the gateway), `users` (sign-in and open-loop load), `faults`
(injecting the schedule), `measure` (metrics, stats, RSS, heap snapshots, percentiles),
`traced` (the gateway under tracemalloc, for `--tracemalloc`), `report` (categories,
guarantees, JSON) and `run` (one run).
"""
