"""A source of synthetic submissions streamed in batches, as a server would page them: the same
rows for every benchmark that syncs them (seed 11 unless told). It imports kobo-tip's modules only when it
yields, so a process that imports it weighs no more for it."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kobo_tip.config import Settings
    from kobo_tip.sources.base import Batch, SyncState

AS_OF = dt.date(2027, 11, 15)
BATCH = 10_000


class GeneratedSource:
    kind = "generated"

    def __init__(
        self, settings: Settings, rows: int, *, seed: int = 11, end_date: dt.date | None = None
    ) -> None:
        """``seed``: another seed, other people; ``end_date``: the last event day (default the
        project's end)."""
        self.settings, self.rows, self.seed, self.end_date = settings, rows, seed, end_date

    def describe(self) -> str:
        return f"{self.rows:,} synthetic submissions"

    def batches(self, state: SyncState) -> Iterator[Batch]:
        from kobo_tip import synthetic
        from kobo_tip.sources.base import Batch
        from kobo_tip.sources.kobo import raw_submission

        project, form = self.settings.project, self.settings.form
        rows = synthetic.Scenario(
            self.rows,
            seed=self.seed,
            roster=form.roster,
            locations=form.locations,
            start_date=project.start_date,
            end_date=self.end_date or project.end_date,
            as_of=AS_OF,
        ).submissions()
        while chunk := list(itertools.islice(rows, BATCH)):
            yield Batch(submissions=[raw_submission(row) for row in chunk], fetched=len(chunk))
