"""Fake servers on loopback for the connector tests, and a seeded generator of tip_victims answers."""

from __future__ import annotations

import csv
import datetime as dt
import random
from functools import cache
from pathlib import Path
from typing import Any

from kobo_tip import indicator as ind
from kobo_tip.sources.base import Batch, KnownSubmission, Source

REPO = Path(__file__).resolve().parents[2]


@cache
def _roster() -> tuple[tuple[str, str], ...]:
    with (REPO / "forms" / "stakeholders.csv").open(encoding="utf-8") as handle:
        return tuple((row["id"], row["type"]) for row in csv.DictReader(handle))


@cache
def _admin1() -> tuple[str, ...]:
    with (REPO / "forms" / "locations.csv").open(encoding="utf-8") as handle:
        return tuple(row["code"] for row in csv.DictReader(handle) if row["level"] == "1")


_GIVEN = ("Maria", "Aye", "Sok", "Nang", "Somchai", "Mya", "Dara", "Zoë", "สมศรี", "Hla")


def tip_answers(rng: random.Random, *, form_version: str = "20251001000000") -> dict[str, Any]:
    """One tip_victims submission's answers as Kobo sends them: strings under ``group/field`` keys."""
    stakeholder, stakeholder_type = rng.choice(_roster())
    event_date = dt.date(2025, 10, 1) + dt.timedelta(days=rng.randrange(300))
    age = rng.randrange(3, 70)
    actions = rng.choice(("identified", "referred", "identified referred"))
    category = rng.choice(ind.CHOICES["person_category"])
    answers: dict[str, Any] = {
        "intro/consent": "yes" if rng.random() < 0.9 else "no",
        "event/event_date": event_date.isoformat(),
        "event/action": actions,
        "event/stakeholder_type": stakeholder_type,
        "event/stakeholder_id": stakeholder,
        "event/identification_country": "th",
        "event/location_admin1": rng.choice(_admin1()),
        "event/person_category": category,
        "person/uic_given": rng.choice(_GIVEN)[:2],
        "person/uic_mother": rng.choice(_GIVEN)[:2],
        "person/birth_year": str(event_date.year - age),
        "person/gender": rng.choice(ind.CHOICES["gender"]),
        "person/age_years": str(age),
        "person/country_origin": rng.choice(("mm", "kh", "la", "th")),
        "form_version": form_version,
    }
    if category == "gbv":
        answers["event/gbv_type"] = rng.choice(ind.CHOICES["gbv_type"])
    else:
        answers["event/exploitation_type"] = rng.choice(ind.CHOICES["exploitation_type"])
    if age >= 5:
        answers["person/wg/wg_seeing"] = rng.choice(ind.CHOICES["wg_difficulty"])
    if "referred" in actions:
        answers["referral/services"] = " ".join(rng.sample(ind.CHOICES["service"], 2))
    if rng.random() < 0.3:
        answers["event/case_ref"] = f"C-{rng.randrange(100000):05d}"
    return answers


class Mirror:
    """An in-memory SyncState that applies batches as the store does (upsert, status, delete).

    It lets the connector tests check the batches a source yields without the SQLite store.
    """

    def __init__(self, *, full: bool = False, reconcile_due: bool = False) -> None:
        self.full = full
        self.reconcile_due = reconcile_due
        self.rows: dict[str, dict[str, Any]] = {}  # submission_id -> data
        self.versions: dict[str, str] = {}
        self.statuses: dict[str, str] = {}
        self.marks: dict[str, str] = {}
        self.deleted: dict[str, str] = {}  # submission_id -> when it was deleted, as the store says it
        self.reconciled = False

    def watermark(self, name: str) -> str | None:
        return self.marks.get(name)

    def known(self) -> dict[str, KnownSubmission]:
        return {sid: KnownSubmission(self.versions[sid], self.statuses[sid]) for sid in self.rows}

    def deleted_since(self, since: str) -> list[str]:
        return [sid for sid, when in self.deleted.items() if when >= since]

    def apply(self, batch: Batch) -> None:
        for sub in batch.submissions:
            self.deleted.pop(sub.submission_id, None)
            self.rows[sub.submission_id] = sub.data
            self.versions[sub.submission_id] = sub.version_id
            if sub.review_status is not None:
                self.statuses[sub.submission_id] = sub.review_status
        self.statuses.update(batch.review_statuses)
        for sid in batch.deleted:
            del self.rows[sid], self.versions[sid], self.statuses[sid]
            self.deleted[sid] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.marks.update(batch.watermarks)
        self.reconciled = self.reconciled or batch.reconciled

    def pull(self, source: Source) -> list[Batch]:
        """Run one sync of ``source`` into this mirror; returns the batches applied."""
        batches = []
        for batch in source.batches(self):
            self.apply(batch)
            batches.append(batch)
        return batches
