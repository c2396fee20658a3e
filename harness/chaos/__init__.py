"""A Jepsen-style randomized fault run against the real processes: ``make chaos``.

``python -m harness.chaos --duration SECONDS --seed N [--clients 40] [--rate 50]
[--json PATH] [--logs DIR]`` starts one persistent Redis, two bridges (one
active, one standby) and two servers (:mod:`harness.chaos.stack`), connects 40
logical WebSocket clients that reconnect and resume for the whole run
(:mod:`harness.chaos.clients`), runs two workers at 50 updates/s each, one
PUBLISHing and one XADDing to the durable ingest stream
(:mod:`harness.chaos.publishers`), and a nemesis that kills, stops and restarts
bridges, servers and Redis, one fault at a time (:mod:`harness.chaos.nemesis`).
At the end a pure checker (:mod:`harness.chaos.checker`) judges every client's
frames against the client contract (docs/protocol.md): nothing lost (unless a
``reset`` said so), nothing twice, in order, positions always growing. The
summary (:mod:`harness.chaos.report`) is printed, and every process's output is
kept in the run directory (``chaos-runs/<seed>-<timestamp>/`` by default).
"""
