"""One exception family: every error a user can meet is a KoboTipError."""

from __future__ import annotations

from typing import Any


class KoboTipError(Exception):
    """Base error. ``exit_code`` is what the command line exits with."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(KoboTipError):
    """The configuration, or a file it names, is wrong. Exit 2."""

    exit_code = 2


class UsageError(KoboTipError):
    """The command line is wrong. Exit 2."""

    exit_code = 2


class SecretMissingError(ConfigError):
    """An environment variable the config names is not set."""


class WeakSecretError(ConfigError):
    """The person-key secret is too short to resist guessing."""


class FormError(KoboTipError):
    """The form could not be built, converted or validated."""


class StoreError(KoboTipError):
    """The local store cannot be opened, is locked or is damaged."""


class SourceError(KoboTipError):
    """A source (server or file) gave something unusable."""


class ServerError(SourceError):
    """An HTTP request failed; carries the response facts, never the secrets."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.detail = detail


class SyncStopped(KoboTipError):
    """A sync was asked to stop (``kobo-tip serve`` shutting down); every committed batch stays."""


class CodesClash(StoreError):
    """A batch coded an answer under a code another writer (a push) saved meanwhile for another
    answer; nothing of the batch was stored, and a new sync starts from the saved codes."""
