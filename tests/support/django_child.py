"""A Django process of the site that a test keeps running, to change users, sessions
and permissions as a web worker, the admin or a management command would.

``manage.py shell -c`` does the same, but starts Django afresh each time (about
1.5 s here); :class:`DjangoChild` starts it once and runs each piece of code in
it, in autocommit, so the app's signal handlers run and announce the change
(``transaction.on_commit`` runs at once) before :meth:`DjangoChild.run`
returns. It is the project's own settings, with the environment given: the
same database and Redis as the server processes under test.

Run as ``python -m tests.support.django_child``, it reads one JSON request per
line (``{"code": "..."}``), runs the code in one namespace kept across requests,
and answers one line: :data:`REPLY` then ``{"ok": true, "result": <the code's
`result`>, "done_at": <time.time() once it ran>}`` or ``{"ok": false, "error":
<traceback>}``.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

REPLY = "@@django-child-reply "
"""Prefix of a reply line; the process's other output (its log) is kept for failures."""
PRELUDE = (
    "from django.contrib.auth.models import Group, Permission, User\n"
    "from django.contrib.sessions.models import Session\n"
    "from django.db import connection\n"
    "from django.utils import timezone\n"
    "import jobupdates\n"
    "VIEW_ALL_JOBS = Permission.objects.get(codename='view_all_jobs')\n"
)
"""Names every request's code may use."""


@dataclass(frozen=True)
class Ran:
    """What one piece of code gave back.

    Attributes:
        result: The value the code left in ``result`` (JSON), None if it left none.
        done_at: ``time.time()`` in the child as the code returned: with a signal,
            after its announcement was sent.
    """

    result: Any
    done_at: float


class DjangoChild:
    """A running ``python -m tests.support.django_child`` (see the module docstring)."""

    def __init__(self, env: dict[str, str]) -> None:
        from harness.processes import ROOT

        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.support.django_child"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.log: list[str] = []
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._collect, daemon=True).start()
        self.run("result = None")  # Django is set up, the prelude ran

    def _collect(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if line.startswith(REPLY):
                self._replies.put(json.loads(line[len(REPLY) :]))
            else:
                self.log.append(line.rstrip("\n"))
        self._replies.put(None)

    def run(self, code: str, timeout: float = 60.0) -> Ran:
        """Run ``code`` in the child (it may set ``result``); fail with its traceback."""
        assert self.popen.stdin is not None
        with self._lock:
            self.popen.stdin.write(json.dumps({"code": code}) + "\n")
            self.popen.stdin.flush()
            try:
                reply = self._replies.get(timeout=timeout)
            except queue.Empty:
                reply = None
        tail = "\n".join(self.log[-50:])
        assert reply is not None, f"the Django child gave no answer to {code!r}; its log:\n{tail}"
        assert reply["ok"], f"the Django child failed to run {code!r}:\n{reply['error']}\n{tail}"
        return Ran(reply["result"], float(reply["done_at"]))

    def stop(self) -> None:
        """End the child (it exits at the end of its input)."""
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def _serve() -> None:
    import django

    django.setup()
    namespace: dict[str, Any] = {}
    exec(PRELUDE, namespace)  # noqa: S102 (the tests' own code)
    for line in sys.stdin:
        namespace.pop("result", None)
        try:
            exec(json.loads(line)["code"], namespace)  # noqa: S102 (the tests' own code)
            reply = {"ok": True, "result": namespace.get("result"), "done_at": time.time()}
        except Exception:
            reply = {"ok": False, "error": traceback.format_exc()}
        print(REPLY + json.dumps(reply, default=str), flush=True)


if __name__ == "__main__":
    _serve()
