"""Exception hierarchy: one class per dsk_status code (include/dsk/dsk_status.h)."""

from __future__ import annotations

from typing import Dict, Type


class Error(Exception):
    """Base of every error raised for a failed dsk call.

    ``status`` is the dsk_status code and ``message`` the library's message for the failed call
    (dsk_last_error_message(), copied at once because the C pointer only lives until the next call).
    """

    status: int = -1

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidArgumentError(Error, ValueError):
    status = 1


class UnsupportedError(Error):
    status = 2


# Also a MemoryError so that generic ``except MemoryError`` handlers see device OOM too.
class OutOfMemoryError(Error, MemoryError):
    status = 3


class BackendUnavailableError(Error):
    status = 4


class DeviceError(Error):
    status = 5


class VersionMismatchError(Error):
    status = 6


class InternalError(Error):
    status = 7


# Also an OSError, so that generic file-error handlers see it. (Not named IOError: that is a
# builtin alias of OSError.)
class IoError(Error, OSError):
    status = 8


# Also a KeyError, so that mapping-style lookups (dict.get-like code, `except KeyError`) work.
class NotFoundError(Error, KeyError):
    status = 9

    def __str__(self) -> str:
        # KeyError would quote the message like a key.
        return self.message


_BY_STATUS: Dict[int, Type[Error]] = {
    cls.status: cls
    for cls in (
        InvalidArgumentError,
        UnsupportedError,
        OutOfMemoryError,
        BackendUnavailableError,
        DeviceError,
        VersionMismatchError,
        InternalError,
        IoError,
        NotFoundError,
    )
}


def error_for_status(status: int, message: str) -> Error:
    # An unknown code (a newer library) still raises, as the base class, with its number kept.
    cls = _BY_STATUS.get(status, Error)
    return cls(message, status)
