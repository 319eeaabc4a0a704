"""Sources: KoboToolbox, ODK Central and export files. Each yields raw submissions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kobo_tip.sources.base import (
    Batch,
    DeployResult,
    FormFiles,
    KnownSubmission,
    RawSubmission,
    Source,
    SyncState,
)

if TYPE_CHECKING:
    from kobo_tip.config import Settings

__all__ = [
    "Batch",
    "DeployResult",
    "FormFiles",
    "KnownSubmission",
    "RawSubmission",
    "Source",
    "SyncState",
    "open_source",
]


def open_source(settings: Settings) -> Source:
    """The source the config's ``[source] kind`` names (modules are imported on demand)."""
    kind = settings.source.kind
    if kind == "kobo":
        from kobo_tip.sources.kobo import KoboSource  # noqa: PLC0415

        return KoboSource.from_settings(settings)
    if kind == "odk_central":
        from kobo_tip.sources.odk_central import CentralSource  # noqa: PLC0415

        return CentralSource.from_settings(settings)
    from kobo_tip.sources.files import FileSource  # noqa: PLC0415

    return FileSource.from_settings(settings)
