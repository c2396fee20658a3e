"""Job identifiers: the one rule shared by Redis payloads and client frames."""

from __future__ import annotations

from jobupdates.protocol._json import describe

__all__ = ["MAX_JOB_ID_LENGTH", "JobIdError", "normalize_job_id"]

MAX_JOB_ID_LENGTH = 255
"""The longest ``job_id`` accepted, in characters."""


class JobIdError(ValueError):
    """A value that is not a job id.

    Attributes:
        detail: What was expected and what came instead.
        missing: True when there was no id at all (absent, null or blank).
    """

    def __init__(self, detail: str, *, missing: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.missing = missing


def normalize_job_id(raw: object) -> str:
    """Return ``raw`` as a job id: a non-blank string, or an integer as its decimal text.

    Raises:
        JobIdError: If ``raw`` is not a job id.
    """
    if raw is None:
        raise JobIdError("expected a job_id, got none", missing=True)
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise JobIdError(
            f"expected job_id to be a string or an integer, got {describe(raw)}", missing=False
        )
    job_id = str(raw)
    if not job_id.strip():
        raise JobIdError(f"expected a non-empty job_id, got {job_id!r}", missing=True)
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise JobIdError(
            f"expected job_id of at most {MAX_JOB_ID_LENGTH} characters, got {len(job_id)}",
            missing=False,
        )
    return job_id
