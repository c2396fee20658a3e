"""``run_bridge`` with a fault planted by the test harness, never by the product.

``python -m tests.support.bridge_hooks`` runs ``manage.py run_bridge`` exactly
as ``harness.processes.start_bridge`` does, after wrapping
``jobupdates.history.History.append_many``: once a call whose arguments hold
:data:`MARK` (an update of that job id, found in any str, bytes, container or
object attribute among them) has returned, the process prints
:data:`DYING` and SIGKILLs itself. That is a crash in the bridge's
record-then-send window: the batch is in the history, and never sent.

The wrapper passes any arguments through (``*args, **kwargs``), so it survives
changes of the method's signature; if the method is gone, the process exits at
once with a message rather than run without its fault.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
from typing import Any

MARK = "die-after-record"
"""The job id whose recording kills the process."""
DYING = "bridge hook: recorded a batch holding the marked update; SIGKILL now"
ARMED = "bridge hook: armed (History.append_many)"


def _mentions(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` holds :data:`MARK` somewhere: in a str or bytes, a container,
    or an object's attributes (whatever shape the batch's arguments take)."""
    if depth > 8:
        return False
    if isinstance(value, str):
        return MARK in value
    if isinstance(value, bytes | bytearray | memoryview):
        return MARK.encode() in bytes(value)
    if isinstance(value, dict):
        return any(_mentions(k, depth + 1) or _mentions(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_mentions(item, depth + 1) for item in value)
    attributes = dict(getattr(value, "__dict__", {}))
    for name in getattr(type(value), "__slots__", ()):
        attributes[name] = getattr(value, name, None)
    if attributes:
        return _mentions(attributes, depth + 1)
    return MARK in repr(value)


def _die_if_marked(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if _mentions(args) or _mentions(kwargs):
        print(DYING, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    """Wrap ``History.append_many`` (a coroutine function or not)."""
    from jobupdates.history import History

    original = getattr(History, "append_many", None)
    if original is None:
        sys.exit("bridge hook: jobupdates.history.History.append_many is gone; update the hook")

    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def append_many(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = await original(self, *args, **kwargs)
            _die_if_marked(args, kwargs)
            return result

    else:

        @functools.wraps(original)
        def append_many(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(self, *args, **kwargs)
            if inspect.isawaitable(result):

                async def recorded() -> Any:
                    value = await result
                    _die_if_marked(args, kwargs)
                    return value

                return recorded()
            _die_if_marked(args, kwargs)
            return result

    History.append_many = append_many  # type: ignore[method-assign]
    print(ARMED, flush=True)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "botrix_site.settings")
    import django
    from django.core.management import execute_from_command_line

    django.setup()
    install()
    execute_from_command_line(["manage.py", "run_bridge", *sys.argv[1:]])


if __name__ == "__main__":
    main()
