"""Sans-I/O protocol of the job-updates component.

Parsing, validation and encoding of everything that crosses a trust boundary,
as pure functions and dataclasses with no Django, asyncio or Redis imports,
the way python-websockets keeps its protocol apart from its I/O:

* :mod:`~jobupdates.protocol.updates`: the messages workers PUBLISH on Redis,
  with :mod:`~jobupdates.protocol.numbers`: the numbers both encodings carry;
* :mod:`~jobupdates.protocol.frames`: the frames exchanged with clients, with
  their error and close codes;
* :mod:`~jobupdates.protocol.events`: the layer event (a job update from the
  bridge to every Daphne process) and :mod:`~jobupdates.protocol.reports`: the
  bridge's report in Redis, one schema each.

Every wire value (message types, reasons, error and close codes) is a named enum.
"""

from __future__ import annotations

from jobupdates.protocol.events import JOB_UPDATE_EVENT, JobUpdateEvent, MalformedEvent
from jobupdates.protocol.frames import (
    MAX_CLIENT_FRAME_BYTES,
    ClientMessage,
    ClientMessageType,
    CloseCode,
    ErrorCode,
    FrameError,
    ServerMessageType,
    error_frame,
    parse_client_frame,
    pong_frame,
    reset_frame,
    subscriptions_frame,
    welcome_frame,
)
from jobupdates.protocol.jobs import MAX_JOB_ID_LENGTH, JobIdError, normalize_job_id
from jobupdates.protocol.reports import BridgeReport, BridgeState, MalformedReport
from jobupdates.protocol.updates import (
    DEFAULT_STATUSES,
    InvalidJobUpdate,
    JobUpdate,
    RejectReason,
    parse_job_update,
)

__all__ = [
    "DEFAULT_STATUSES",
    "JOB_UPDATE_EVENT",
    "MAX_CLIENT_FRAME_BYTES",
    "MAX_JOB_ID_LENGTH",
    "BridgeReport",
    "BridgeState",
    "ClientMessage",
    "ClientMessageType",
    "CloseCode",
    "ErrorCode",
    "FrameError",
    "InvalidJobUpdate",
    "JobIdError",
    "JobUpdate",
    "JobUpdateEvent",
    "MalformedEvent",
    "MalformedReport",
    "RejectReason",
    "ServerMessageType",
    "error_frame",
    "normalize_job_id",
    "parse_client_frame",
    "parse_job_update",
    "pong_frame",
    "reset_frame",
    "subscriptions_frame",
    "welcome_frame",
]
