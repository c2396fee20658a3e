"""What ``tests/`` and ``benchmarks/`` share: the project's real processes and clients.

* :mod:`harness.processes`: Daphne, ``manage.py run_bridge`` and their logs;
* :mod:`harness.clients`: the admin login and WebSocket connections, as a browser makes them;
* :mod:`harness.updates`: an update as a worker publishes it.

Neither package imports the other's internals: both import this one (Redis
servers come from :mod:`botrix_site.redis_server`).
"""
