"""Seeded synthetic data: a stakeholder roster and tip_victims submissions in Kobo's JSON shape.

Used by ``kobo-tip demo``, by tests and by the benchmarks. The same seed gives the same data.
Submissions look like what ``GET /api/v2/assets/{uid}/data/`` returns (kobo-api.md section
3.3): every answer a string under its group path, select_multiple space-separated,
unanswered questions absent, ``_id`` ascending with ``_submission_time``.

The scenario is built to exercise the counting rules: people seen by several stakeholders
(identified at the border, referred by an NGO later) with the same UIC parts written in
different case or accents, records without consent, untrained and unlisted stakeholders,
rejected and on-hold records, late entries and a few malformed values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import heapq
import json
import random
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

from kobo_tip import indicator as ind
from kobo_tip.config import Location, Stakeholder

# --- group paths (contract section 2) ---------------------------------------------------------

#: Kobo key of every answer of the form: ``event/event_date``; ``form_version`` sits at the top.
FIELD_PATHS: Final[dict[str, str]] = {
    **{name: f"{group}/{name}" for name, group in ind.FIELD_GROUPS.items()},
    ind.FORM_VERSION: ind.FORM_VERSION,
}
#: Kobo's metadata answers, at the top level under their own names.
META_FIELDS: Final = ("start", "end", "today", "deviceid", "username")

_P = FIELD_PATHS
_K_CONSENT = _P[ind.CONSENT]
_K_DANGER = _P[ind.IMMEDIATE_DANGER]
_K_CONSENT_BY = _P[ind.CONSENT_BY]
_K_DATE = _P[ind.EVENT_DATE]
_K_ACTION = _P[ind.ACTION]
_K_STYPE = _P[ind.STAKEHOLDER_TYPE]
_K_SID = _P[ind.STAKEHOLDER_ID]
_K_OTHER_ORG = _P[ind.STAKEHOLDER_OTHER_ORG]
_K_COUNTRY = _P[ind.IDENTIFICATION_COUNTRY]
_K_ADMIN1 = _P[ind.LOCATION_ADMIN1]
_K_ADMIN2 = _P[ind.LOCATION_ADMIN2]
_K_CASE = _P[ind.CASE_REF]
_K_CATEGORY = _P[ind.PERSON_CATEGORY]
_K_EXPLOIT = _P[ind.EXPLOITATION_TYPE]
_K_GBV = _P[ind.GBV_TYPE]
_K_GIVEN = _P[ind.UIC_GIVEN]
_K_MOTHER = _P[ind.UIC_MOTHER]
_K_BIRTH = _P[ind.BIRTH_YEAR]
_K_GENDER = _P[ind.GENDER]
_K_AGE = _P[ind.AGE_YEARS]
_K_AGE_EST = _P[ind.AGE_ESTIMATED]
_K_ORIGIN = _P[ind.COUNTRY_ORIGIN]
_K_ETHNICITY = _P[ind.ETHNICITY]
_K_WG = tuple(_P[name] for name in ind.WG_FIELDS)
_K_ELSEWHERE = _P[ind.REPORTED_ELSEWHERE]
_K_SERVICES = _P[ind.SERVICES]
_K_OUTCOME = _P[ind.REFERRAL_OUTCOME]
_K_REFERRAL_ORG = _P[ind.REFERRAL_ORG]
_K_REFERRAL_DATE = _P[ind.REFERRAL_DATE]
_K_SHARE = _P[ind.CONSENT_TO_SHARE]
_K_FOLLOW_UP = _P[ind.FOLLOW_UP_DATE]
_ADULT_AGE = 18
_FOLLOW_UP_DAYS = 14
_UNLISTED_ORGS = {
    "border_control": "Checkpoint 7 immigration post",
    "labour_inspector": "Provincial labour office",
    "ngo_partner": "Women's shelter network",
    "private_sector": "Harbour fishing cooperative",
    "community_member": "Village volunteer group",
    "other_government": "District social welfare office",
    "other": "Temple committee",
}

_CHOICES = ind.CHOICES
_VALIDATION_LABELS: Final = {
    "validation_status_approved": "Approved",
    "validation_status_not_approved": "Not Approved",
    "validation_status_on_hold": "On Hold",
}

# --- weighted tables: expanded to 1024 slots, so a weighted pick is ``table[getrandbits(10)]`` --

_SLOT_BITS: Final = 10
_SLOTS: Final = 1 << _SLOT_BITS


def _table(weights: Mapping[str, float]) -> tuple[str, ...]:
    total = sum(weights.values())
    shares = {name: weight / total * _SLOTS for name, weight in weights.items()}
    counts = {name: max(1, int(share)) for name, share in shares.items()}
    # Hand the slots left over to the largest remainders, or take surplus from the largest.
    by_remainder = sorted(shares, key=lambda name: shares[name] - int(shares[name]), reverse=True)
    while sum(counts.values()) < _SLOTS:
        counts[by_remainder.pop(0)] += 1
    while sum(counts.values()) > _SLOTS:
        counts[max(counts, key=counts.__getitem__)] -= 1
    return tuple(name for name, count in counts.items() for _ in range(count))


_GENDERS = _table({"female": 63, "male": 31, "non_binary_other": 2, "prefer_not_to_say": 1, "unknown": 3})
_ORIGINS = _table({"mm": 42, "kh": 20, "la": 14, "th": 14, "vn": 5, ind.STATELESS: 3, ind.UNKNOWN: 2})
_FIRST_ROLES = _table(
    {
        "border_control": 30,
        "other_government": 20,
        "labour_inspector": 15,
        "community_member": 11,
        "ngo_partner": 13,
        "private_sector": 6,
        "other": 5,
    }
)
_FOLLOW_ROLES = _table({"ngo_partner": 55, "other_government": 25, "other": 10, "community_member": 10})
_FIRST_ACTIONS = _table({"identified": 45, "identified referred": 45, "referred": 10})
_FOLLOW_ACTIONS = _table({"referred": 85, "identified referred": 10, "identified": 5})
_CATEGORIES = _table(
    {
        "trafficking_presumed": 42,
        "trafficking_confirmed": 9,
        "exploitation_other": 20,
        "gbv": 22,
        "trafficking_presumed gbv": 4,
        "exploitation_other gbv": 3,
    }
)
_EXPLOITATION = _table(
    {
        "forced_labour": 45,
        "sexual_exploitation": 22,
        "forced_labour servitude": 8,
        "forced_marriage": 5,
        "forced_begging": 5,
        "servitude": 5,
        "surrogacy": 1,
        "organ_removal": 1,
        "other": 4,
    }
)
_CHILD_EXPLOITATION = _table(
    {"child_labour": 45, "forced_begging": 25, "sexual_exploitation": 20, "other": 10}
)
_GBV = _table(
    {
        "physical_assault": 30,
        "rape": 18,
        "sexual_assault": 16,
        "psychological_abuse": 16,
        "denial_of_resources": 10,
        "forced_marriage": 8,
        "non_gbv": 2,
    }
)
_WG = _table({"no_difficulty": 86, "some_difficulty": 9, "a_lot_of_difficulty": 3, "cannot_do_at_all": 1})
_ELSEWHERE = _table({"no": 60, "yes_project_partner": 12, "yes_other_org": 8, "unknown": 20})
_OUTCOMES = _table(
    {
        "referred": 55,
        "provided_by_own_agency": 15,
        "already_received": 8,
        "declined": 8,
        "unavailable": 7,
        "not_applicable": 7,
    }
)
_SERVICES = _table(
    {
        "shelter": 16,
        "medical": 15,
        "psychosocial": 14,
        "legal_aid": 10,
        "basic_needs": 10,
        "documentation": 8,
        "return_repatriation": 7,
        "law_enforcement": 5,
        "interpretation": 4,
        "child_protection": 3,
        "reintegration": 3,
        "livelihood": 2,
        "education": 1,
        "emergency_transport": 1,
        "other": 1,
    }
)
_VALIDATION = _table(
    {
        "": 78,
        "validation_status_approved": 14,
        "validation_status_on_hold": 4,
        "validation_status_not_approved": 4,
    }
)
_EVENTS_PER_PERSON = (1,) * 58 + (2,) * 27 + (3,) * 10 + (4,) * 4 + (6,)

# First two letters of given names, as enumerators write them, by country of origin. Scripts
# vary on purpose: Thai, Burmese, Vietnamese with tone marks, Latin transliterations.
_NAME_PARTS: Final[dict[str, tuple[str, ...]]] = {
    "mm": ("Ay", "Kh", "My", "Th", "Za", "Hl", "Ni", "Su", "Mo", "Ph", "Ei", "Ti", "Ky", "Wi", "မြ", "ခင်"),
    "kh": ("So", "Da", "Sr", "Ch", "Vi", "Ra", "Sa", "Ma", "Bo", "Ly"),
    "la": ("No", "Ke", "Ph", "Bo", "Vo", "Kh", "Ou", "Si"),
    "th": ("สม", "นิ", "Ma", "So", "No", "Pl", "An", "Da", "Ka", "Nu"),
    "vn": ("Hư", "Tâ", "Lệ", "Ng", "Tr", "Mỹ", "Hồ", "Đà", "Th", "Li"),
}
_FALLBACK_NAMES = _NAME_PARTS["mm"]

# Roster templates: (id prefix, names with a {place} slot) per stakeholder type.
_ROSTER_TEMPLATES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "border_control": ("bc", ("{place} Immigration Checkpoint", "{place} Border Post")),
    "labour_inspector": ("li", ("{place} Provincial Labour Office", "{place} Labour Protection Office")),
    "ngo_partner": (
        "ngo",
        ("{place} Migrant Assistance Centre", "Hope Shelter Foundation {place}", "{place} Women's Network"),
    ),
    "private_sector": ("ps", ("{place} Seafood Processors Association", "{place} Garment Employers Group")),
    "community_member": ("cm", ("{place} Community Watch Volunteers", "{place} Village Health Volunteers")),
    "other_government": (
        "og",
        (
            "{place} Anti-Trafficking Police",
            "{place} Social Development and Human Security Office",
            "{place} Hospital One Stop Crisis Centre",
        ),
    ),
    "other": ("oth", ("{place} Legal Aid Clinic", "{place} Monastery Outreach")),
}
# The partner organisations the demo's stakeholders belong to (the roster's ``organisation``).
PARTNER_ORGANISATIONS: Final = (
    "Mekong Migrant Aid",
    "Northern Labour Rights Network",
    "Provincial Protection Office",
    "Safe Journeys Foundation",
)
_PLACES: Final = (
    "Mae Sot",
    "Aranyaprathet",
    "Mae Sai",
    "Ranong",
    "Samut Sakhon",
    "Songkhla",
    "Nong Khai",
    "Mukdahan",
    "Chon Buri",
    "Bangkok",
    "Chiang Rai",
    "Kanchanaburi",
    "Chiang Mai",
    "Hat Yai",
    "Udon Thani",
    "Sa Kaeo",
)
_ROSTER_TYPE_WEIGHTS = _table(
    {
        "border_control": 18,
        "labour_inspector": 12,
        "ngo_partner": 25,
        "private_sector": 8,
        "community_member": 12,
        "other_government": 18,
        "other": 7,
    }
)
# Provinces where identifications cluster (borders, fishing ports, cities), when listed.
_HOTSPOTS: Final = ("TH-63", "TH-27", "TH-57", "TH-85", "TH-74", "TH-10", "TH-20", "TH-90", "TH-43", "TH-49")

# Malformed values the connector must report, never crash on.
MALFORMED_VALUES: Final[dict[str, str]] = {
    ind.AGE_YEARS: "abc",
    ind.EVENT_DATE: "2026-13-45",
    ind.GENDER: "femme",  # not a choice name
}
_MALFORMED_ORDER: Final = tuple(MALFORMED_VALUES)


# --- roster -------------------------------------------------------------------------------


def generate_roster(
    n: int = 30, *, seed: int, project_start: dt.date = dt.date(2025, 10, 1)
) -> list[Stakeholder]:
    """``n`` stakeholders of all seven types, trained over the project's first year; a few untrained.
    Each belongs to one of ``PARTNER_ORGANISATIONS``, but for about one in ten that belongs to none."""
    types = _CHOICES["stakeholder_type"]
    if n < len(types):
        raise ValueError(f"a roster needs at least {len(types)} stakeholders to hold every type")
    rng = random.Random(f"roster:{seed}")
    kinds = list(types) + [rng.choice(_ROSTER_TYPE_WEIGHTS) for _ in range(n - len(types))]
    untrained = set(rng.sample(range(n), max(1, n // 10)))
    used_names: set[str] = set()
    used_ids: set[str] = set()
    roster = []
    for index, kind in enumerate(kinds):
        prefix, templates = _ROSTER_TEMPLATES[kind]
        free = [
            (t.format(place=p), p) for t in templates for p in _PLACES if t.format(place=p) not in used_names
        ]
        if free:
            name, place = rng.choice(free)
        else:  # a long roster: number the names once every place is taken
            place = rng.choice(_PLACES)
            name = f"{templates[0].format(place=place)} {index + 1}"
        used_names.add(name)
        base = f"{prefix}_{re.sub(r'[^a-z0-9]+', '', place.lower())}"
        sid, suffix = base, 2
        while sid in used_ids:
            sid, suffix = f"{base}{suffix}", suffix + 1
        used_ids.add(sid)
        trained_on = None if index in untrained else project_start + dt.timedelta(days=rng.randrange(365))
        roster.append(Stakeholder(sid, name, kind, trained_on))
    # A random stream of its own, so adding organisations left every other draw as it was.
    partners = random.Random(f"organisations:{seed}")
    return [
        dataclasses.replace(row, organisation=partners.choice(PARTNER_ORGANISATIONS))
        if partners.random() >= 0.1
        else row
        for row in roster
    ]


# --- submissions --------------------------------------------------------------------------


class _Person(NamedTuple):
    given: tuple[str, ...]  # spellings of the same letters: as written, upper, lower, unaccented
    mother: tuple[str, ...]
    answers: dict[str, str]  # the rest of the person group, in form order
    age: int  # at the first event
    first_year: int
    category: str
    exploitation: str
    gbv: str


class _Site(NamedTuple):
    """A roster stakeholder as the generator uses it: home province, and the keys that each of
    its enumerators' records start with (copied per record: cheaper than setting them one by one)."""

    admin1: str
    heads: tuple[dict[str, Any], ...]
    case_prefix: str


def _spellings(part: str) -> tuple[str, ...]:
    unaccented = "".join(
        ch for ch in unicodedata.normalize("NFKD", part) if not unicodedata.category(ch).startswith("M")
    )
    return (part, part.upper(), part.lower(), unicodedata.normalize("NFC", unaccented))


_SPELLINGS: Final = {part: _spellings(part) for parts in _NAME_PARTS.values() for part in parts}
_UNKNOWN_MOTHER: Final = ("99",) * 4
_ALPHABET: Final = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(length))


def _uuid(rng: random.Random) -> str:
    """A uuid4-looking string from the seeded stream (uuid.uuid4 cannot be seeded)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


@functools.cache
def _clock() -> tuple[str, ...]:
    """``HH:MM:SS`` for every second of a day: formatting times is the generator's hot spot."""
    return tuple(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))


class Scenario:
    """Everything fixed for one generated data set; ``submissions()`` streams the records."""

    # The generator's knobs, all keyword-only (most with defaults): a caller names the few it sets.
    def __init__(  # noqa: PLR0913
        self,
        n: int,
        *,
        seed: int,
        roster: Sequence[Stakeholder],
        locations: Sequence[Location],
        start_date: dt.date,
        end_date: dt.date,
        as_of: dt.date,
        country: str = "th",
        tz_hours: int = 7,
        ethnicities: Sequence[str] = (),
        disability: bool = True,
        first_id: int = 48_000_000,
        malformed: int | None = None,
        referral_orgs: Sequence[str] = (),
    ) -> None:
        """The knobs of ``n`` submissions, which ``submissions()`` streams in ``_id`` order (Kobo
        data-API shape), seeded.

        Event dates fall in [start_date, min(end_date, as_of - 1 day)]; submission times are
        before ``as_of``. ``malformed``: how many records carry one malformed value (default
        0.3 %, at least 3 when n >= 100). ``tz_hours``: the devices' UTC offset (0..12).
        ``first_id``: where ``_id``s start (Kobo's are server-wide, hence large and with gaps).
        ``referral_orgs``: the referral directory's ids; without them no ``referral_org`` is answered.
        """
        if not roster:
            raise ValueError("the roster is empty")
        if not 0 <= tz_hours <= 12:
            raise ValueError("tz_hours must be from 0 to 12")
        self.last_day = (min(end_date, as_of - dt.timedelta(days=1)) - start_date).days
        if self.last_day < 0:
            raise ValueError("no day for events: start_date must be before as_of and on or before end_date")
        self.n = n
        self.rng = rng = random.Random(f"submissions:{seed}")
        # The intake answers (danger, who consented, the referral's details) draw from their own
        # generator, so adding them left every other answer of a seed as it was.
        self.intake_rng = random.Random(f"intake:{seed}")
        self.referral_orgs = (*referral_orgs, ind.NOT_LISTED) if referral_orgs else ()
        self.country = country
        self.ethnicities = tuple(ethnicities)
        self.disability = disability
        self.first_id = first_id
        self.last_fill_day = (as_of - start_date).days - 1
        self.limit = (self.last_fill_day + 1) * 86400 - 1  # nothing is submitted on or after as_of
        self.tz_seconds = tz_hours * 3600
        self.offset = f".000+{tz_hours:02d}:00"
        self.epoch0 = int(dt.datetime.combine(start_date, dt.time(), dt.UTC).timestamp())
        # Day number -> ISO date, from the day before start_date (UTC of an early local morning).
        self.days = [
            (start_date + dt.timedelta(days=d)).isoformat() for d in range(-1, self.last_fill_day + 2)
        ]

        self.formhub_uuid = f"{rng.getrandbits(128):032x}"
        sites = [self._site(row, locations) for row in roster]
        self.sites_by_type = {
            kind: [site for site, row in zip(sites, roster, strict=True) if row.type == kind] or sites
            for kind in _CHOICES["stakeholder_type"]
        }
        # Someone not on the roster, through the web form link: no account, a browser's device id,
        # and the organisation they typed.
        self.unlisted_heads: dict[str, dict[str, Any]] = {
            kind: {
                "formhub/uuid": self.formhub_uuid,
                "deviceid": f"ee.kobotoolbox.org:{_token(rng, 16)}",
                _K_STYPE: kind,
                _K_SID: ind.NOT_LISTED,
                _K_OTHER_ORG: _UNLISTED_ORGS[kind],
                "_submitted_by": None,
            }
            for kind in _CHOICES["stakeholder_type"]
        }
        self.admin1_by_country: dict[str, list[str]] = {}
        self.admin2_by_admin1: dict[str, list[str]] = {}
        for loc in locations:
            if loc.level == 1:
                self.admin1_by_country.setdefault(loc.parent, []).append(loc.code)
            else:
                self.admin2_by_admin1.setdefault(loc.parent, []).append(loc.code)
        self.neighbours = [c for c in ("mm", "kh", "la", "my") if c != country]
        # Multi-answer combinations drawn once, then picked like the weighted tables.
        self.service_sets = tuple(self._service_set() for _ in range(_SLOTS))
        self.wg_sets = tuple({key: _WG[rng.getrandbits(_SLOT_BITS)] for key in _K_WG} for _ in range(_SLOTS))

        # Kobo identities of the project: asset uid and two deployed form versions, each with the
        # keys every record of that version ends with.
        asset_uid = "a" + _token(rng, 21)
        built = dt.datetime.combine(start_date, dt.time(3, 30))
        self.switch_day = self.last_day // 2
        self.tails = tuple(
            {
                ind.FORM_VERSION: (built + dt.timedelta(days=days)).strftime("%Y%m%d%H%M%S"),
                "__version__": "v" + _token(rng, 21),
                "_xform_id_string": asset_uid,
                "_status": "submitted_via_web",
            }
            for days in (-14, self.switch_day - 3)
        )
        bad = malformed if malformed is not None else (max(3, n * 3 // 1000) if n >= 100 else 0)
        self.malformed_at = frozenset(rng.sample(range(n), min(bad, n)))

    def _site(self, row: Stakeholder, locations: Sequence[Location]) -> _Site:
        rng = self.rng
        admin1 = [loc.code for loc in locations if loc.level == 1 and loc.parent == self.country]
        hot = [code for code in _HOTSPOTS if code in admin1] or admin1
        home = (rng.choice(hot) if rng.random() < 0.8 else rng.choice(admin1)) if admin1 else ""
        heads = []
        for number in range(1, 1 + rng.randint(1, 3)):
            username = f"{row.id}_{number:02d}"
            heads.append(
                {
                    "formhub/uuid": self.formhub_uuid,
                    "deviceid": f"collect:{_token(rng, 16)}",
                    "username": username,
                    _K_STYPE: row.type,
                    _K_SID: row.id,
                    "_submitted_by": username,
                }
            )
        return _Site(home, tuple(heads), row.id.split("_")[0].upper())

    def _service_set(self) -> str:
        order = _CHOICES["service"]
        chosen = {_SERVICES[self.rng.getrandbits(_SLOT_BITS)] for _ in range(1 + self.rng.randrange(3))}
        return " ".join(sorted(chosen, key=order.index))

    def _intake(self, consent: bool, age: int) -> dict[str, str]:
        """Immediate danger (rarely yes) and, with consent, who gave it (a guardian or, now and
        then, a case worker for a child)."""
        rand = self.intake_rng.random
        r = rand()
        answers = {_K_DANGER: "yes" if r < 0.04 else "unknown" if r < 0.1 else "no"}
        if consent:
            child = "guardian_with_assent" if rand() < 0.8 else "caseworker_best_interests"
            answers[_K_CONSENT_BY] = "person" if age >= _ADULT_AGE else child
        return answers

    def _referral(self, event_date: str) -> dict[str, str]:
        """The receiving organisation (when there is a directory; a few not in it), the referral
        made on the event's day, consent to share (mostly yes) and, often, a follow-up date."""
        rand = self.intake_rng.random
        answers = {_K_REFERRAL_DATE: event_date, _K_SHARE: "yes" if rand() < 0.85 else "no"}
        orgs = self.referral_orgs
        if orgs:
            answers[_K_REFERRAL_ORG] = orgs[-1] if rand() < 0.05 else orgs[int(rand() * (len(orgs) - 1))]
        if rand() < 0.6:
            follow_up = dt.date.fromisoformat(event_date) + dt.timedelta(days=_FOLLOW_UP_DAYS)
            answers[_K_FOLLOW_UP] = follow_up.isoformat()
        return answers

    # -- who and when ------------------------------------------------------------------------

    def _person(self, day: int) -> _Person:
        rand, bits = self.rng.random, self.rng.getrandbits
        origin = _ORIGINS[bits(_SLOT_BITS)]
        names = _NAME_PARTS.get(origin, _FALLBACK_NAMES)
        r = rand()
        if r < 0.08:
            age = 3 + int(rand() * 9)
        elif r < 0.24:
            age = 12 + int(rand() * 6)
        elif r < 0.97:
            age = 18 + int(rand() * 42)
        else:
            age = 60 + int(rand() * 18)
        year = int(self.days[day + 1][:4])
        answers = {
            _K_BIRTH: str(year - age - (rand() < 0.4)),
            _K_GENDER: _GENDERS[bits(_SLOT_BITS)],
            _K_AGE: str(age),
        }
        r = rand()
        if r < 0.75:
            answers[_K_AGE_EST] = "yes" if r < 0.25 else "no"
        answers[_K_ORIGIN] = origin
        if self.ethnicities:
            answers[_K_ETHNICITY] = self.ethnicities[int(rand() * len(self.ethnicities))]
        if self.disability and age >= 5 and rand() < 0.85:
            answers.update(self.wg_sets[bits(_SLOT_BITS)])
        category = _CATEGORIES[bits(_SLOT_BITS)]
        exploitation = ""
        if "trafficking" in category or "exploitation" in category:
            exploitation = (_CHILD_EXPLOITATION if age < 15 else _EXPLOITATION)[bits(_SLOT_BITS)]
        return _Person(
            given=_SPELLINGS[names[int(rand() * len(names))]],
            mother=_UNKNOWN_MOTHER if rand() < 0.08 else _SPELLINGS[names[int(rand() * len(names))]],
            answers=answers,
            age=age,
            first_year=year,
            category=category,
            exploitation=exploitation,
            gbv=_GBV[bits(_SLOT_BITS)] if "gbv" in category else "",
        )

    def _times(self, day: int) -> tuple[int, int]:
        """(local fill time, UTC submission time) in seconds from start_date midnight."""
        rand = self.rng.random
        r = rand()
        fill_day = day
        if r < 0.05:  # a late entry: typed in from paper weeks or months after the event
            fill_day = min(day + 35 + int(rand() * 185), self.last_fill_day)
        fill = fill_day * 86400 + 8 * 3600 + int(rand() * 10 * 3600)
        upload = 30 + int(rand() * 870) if r < 0.75 else 3600 + int(rand() * 5 * 86400)
        return fill, min(fill - self.tz_seconds + 900 + upload, self.limit)

    def _timeline(self) -> Iterator[tuple[int, int, int, int, _Person, bool]]:
        """Events in submission order: (submitted, seq, fill, event day, person, follow-up)."""
        rand = self.rng.random
        counts: list[int] = []  # events per person, summing to exactly n
        remaining = self.n
        while remaining > 0:
            k = min(_EVENTS_PER_PERSON[int(rand() * len(_EVENTS_PER_PERSON))], remaining)
            counts.append(k)
            remaining -= k
        people, span, last_day = len(counts), self.last_day + 1, self.last_day
        new_person, times, push, pop = self._person, self._times, heapq.heappush, heapq.heappop
        heap: list[tuple[int, int, int, int, _Person, bool]] = []
        seq = 0
        for index, k in enumerate(counts):
            # Stratified first sightings, denser later as more stakeholders get trained.
            day = min(last_day, int(span * ((index + rand()) / people) ** 0.85))
            # Events scheduled from here on are submitted after this day starts (tz <= 12 h).
            threshold = (day - 1) * 86400
            while heap and heap[0][0] < threshold:
                yield pop(heap)
            person = new_person(day)
            for event in range(k):
                if event:  # seen again: mostly within weeks (a referral), some up to four months later
                    r = rand()
                    gap = 1 + int(rand() * (14 if r < 0.6 else 60 if r < 0.9 else 120))
                    day = day + gap if day + gap <= last_day else day + int(rand() * (last_day - day + 1))
                fill, submitted = times(day)
                push(heap, (submitted, seq, fill, day, person, event > 0))
                seq += 1
        while heap:
            yield pop(heap)

    # -- the records -------------------------------------------------------------------------

    # The generator's hot loop, kept in one frame with its locals bound once (it makes millions of rows).
    def submissions(self) -> Iterator[dict[str, Any]]:  # noqa: PLR0912, PLR0915
        if self.n <= 0:
            return
        rng = self.rng
        rand, bits = rng.random, rng.getrandbits
        days, clock, offset = self.days, _clock(), self.offset
        by_type, unlisted, country, neighbours = (
            self.sites_by_type,
            self.unlisted_heads,
            self.country,
            self.neighbours,
        )
        admin1_by_country, admin2_by_admin1 = self.admin1_by_country, self.admin2_by_admin1
        service_sets, malformed_at = self.service_sets, self.malformed_at
        epoch0, limit, switch_day, tails = self.epoch0, self.limit, self.switch_day, self.tails
        next_id = self.first_id

        for position, (submitted, _, fill, day, person, follow) in enumerate(self._timeline()):
            # Kobo's _id is server-wide: other forms take some numbers in between.
            next_id += 1 if rand() < 0.9 else 2 + int(rand() * 4)
            role = (_FOLLOW_ROLES if follow else _FIRST_ROLES)[bits(_SLOT_BITS)]
            if rand() < 0.03:
                site = None
                sub = unlisted[role].copy()
            else:
                candidates = by_type[role]
                site = candidates[int(rand() * len(candidates))]
                sub = site.heads[int(rand() * len(site.heads))].copy()
            fill_day, fill_second = divmod(fill, 86400)
            end_day, end_second = divmod(fill + 120 + int(rand() * 780), 86400)
            event_date = days[day + 1]
            sub["_id"] = next_id
            sub["start"] = f"{days[fill_day + 1]}T{clock[fill_second]}{offset}"
            sub["end"] = f"{days[end_day + 1]}T{clock[end_second]}{offset}"
            sub["today"] = days[fill_day + 1]
            consent = rand() < 0.9
            age = person.age + (int(event_date[:4]) - person.first_year if follow else 0)  # on the event date
            sub.update(self._intake(consent, age))
            sub[_K_CONSENT] = "yes" if consent else "no"
            sub[_K_DATE] = event_date
            action = (_FOLLOW_ACTIONS if follow else _FIRST_ACTIONS)[bits(_SLOT_BITS)]
            sub[_K_ACTION] = action
            ident = country if rand() < 0.96 else neighbours[int(rand() * len(neighbours))]
            sub[_K_COUNTRY] = ident
            admin1_list = admin1_by_country.get(ident)
            if admin1_list:
                if site and site.admin1 and ident == country and rand() < 0.85:
                    admin1 = site.admin1
                else:
                    admin1 = admin1_list[int(rand() * len(admin1_list))]
                sub[_K_ADMIN1] = admin1
                admin2_list = admin2_by_admin1.get(admin1)
                if admin2_list and rand() < 0.7:
                    sub[_K_ADMIN2] = admin2_list[int(rand() * len(admin2_list))]
            if rand() < (0.2 if consent else 0.6):
                prefix = site.case_prefix if site else "REF"
                sub[_K_CASE] = f"{prefix}-{event_date[:4]}-{1 + int(rand() * 9999):04d}"
            sub[_K_CATEGORY] = person.category
            if person.exploitation:
                sub[_K_EXPLOIT] = person.exploitation
            if person.gbv:
                sub[_K_GBV] = person.gbv
            if consent:
                # A later stakeholder may write the same letters in another case or without accents.
                spelling = int(rand() * 4) if follow and rand() < 0.3 else 0
                sub[_K_GIVEN] = person.given[spelling]
                sub[_K_MOTHER] = person.mother[spelling]
                sub.update(person.answers)
                if follow and event_date[:4] != str(person.first_year):  # a birthday may have passed
                    sub[_K_AGE] = str(age)
                if rand() < 0.7:
                    sub[_K_ELSEWHERE] = (
                        "yes_project_partner" if follow and rand() < 0.5 else _ELSEWHERE[bits(_SLOT_BITS)]
                    )
            if "referred" in action:
                sub[_K_SERVICES] = service_sets[bits(_SLOT_BITS)]
                if rand() < 0.8:
                    sub[_K_OUTCOME] = _OUTCOMES[bits(_SLOT_BITS)]
                sub.update(self._referral(event_date))
            if position in malformed_at:
                field = _MALFORMED_ORDER[position % len(_MALFORMED_ORDER)]
                if FIELD_PATHS[field] not in sub:  # no consent: the person group is absent
                    field = ind.EVENT_DATE
                sub[FIELD_PATHS[field]] = MALFORMED_VALUES[field]
            sub.update(tails[day > switch_day])
            uuid = _uuid(rng)
            sub["meta/instanceID"] = "uuid:" + uuid
            sub["_uuid"] = uuid
            sub["_attachments"] = []
            sub["_geolocation"] = [None, None]
            sub["_submission_time"] = f"{days[submitted // 86400 + 1]}T{clock[submitted % 86400]}"
            status = _VALIDATION[bits(_SLOT_BITS)]
            sub["_validation_status"] = (
                _validation(status, epoch0 + min(submitted + 3600 + int(rand() * 30 * 86400), limit))
                if status
                else {}
            )
            sub["meta/rootUuid"] = "uuid:" + uuid
            yield sub


def _validation(uid: str, timestamp: int) -> dict[str, Any]:
    """Kobo's ``_validation_status`` object (section 5 of kobo-api.md)."""
    return {"timestamp": timestamp, "uid": uid, "by_whom": "me_officer", "label": _VALIDATION_LABELS[uid]}


def generate_submissions(n: int, **options: Any) -> list[dict[str, Any]]:
    """``list(Scenario(n, **options).submissions())``: see there for the options."""
    return list(Scenario(n, **options).submissions())


# --- edits, later exports, other shapes ---------------------------------------------------


def edit_submission(
    submission: Mapping[str, Any], changes: Mapping[str, Any], *, seed: int
) -> dict[str, Any]:
    """The submission as Kobo returns it after an edit: same ``_id``, ``_submission_time`` and
    ``meta/rootUuid``; new ``_uuid`` and ``meta/instanceID``; ``meta/deprecatedID`` = the old one.

    ``changes`` maps a field name (``age_years``) or a full key (``event/age_years``) to its new
    value (written as a string, like every Kobo answer) or to None to clear the answer.
    """
    rng = random.Random(f"edit:{seed}:{submission['_id']}:{submission['_uuid']}")
    uuid = _uuid(rng)
    edited = dict(submission)
    edited["_validation_status"] = dict(submission.get("_validation_status") or {})
    edited["meta/deprecatedID"] = submission["meta/instanceID"]
    edited["meta/instanceID"] = "uuid:" + uuid
    edited["_uuid"] = uuid
    for name, value in changes.items():
        key = FIELD_PATHS.get(name, name)
        if value is None:
            edited.pop(key, None)
        else:
            edited[key] = str(value)
    return edited


def set_validation_status(submission: Mapping[str, Any], uid: str, *, timestamp: int) -> dict[str, Any]:
    """The submission after a review (not an edit: ``_uuid`` stays); ``uid`` "" clears the status."""
    reviewed = dict(submission)
    reviewed["_validation_status"] = _validation(uid, timestamp) if uid else {}
    return reviewed


@dataclass(frozen=True)
class Revision:
    """A later export of the same form, and the ``_id``s of what changed since the earlier one."""

    submissions: list[dict[str, Any]]
    edited: tuple[int, ...]
    deleted: tuple[int, ...]
    reviewed: tuple[int, ...]


def revise_submissions(
    submissions: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    edit_share: float = 0.01,
    delete_share: float = 0.005,
    review_share: float = 0.01,
) -> Revision:
    """Edit, delete and review a few submissions, as a data manager does between two syncs.

    Edits fix half of the malformed values and, on other records, move an event date a few
    weeks earlier (a person can move to an earlier quarter) or correct an age by a year or
    two. Reviews reject or approve. Deleted records are duplicates entered twice.
    """
    rng = random.Random(f"revise:{seed}")
    records = [dict(sub) for sub in submissions]
    if not records:
        return Revision([], (), (), ())

    def share(fraction: float) -> int:
        return max(1, round(len(records) * fraction)) if fraction > 0 else 0

    malformed = [i for i, sub in enumerate(records) if _malformed_field(sub)]
    to_fix = malformed[: (len(malformed) + 1) // 2]
    others = sorted(set(range(len(records))) - set(malformed))
    picked = rng.sample(
        others, min(len(others), share(edit_share) + share(delete_share) + share(review_share))
    )
    to_edit = to_fix + picked[: share(edit_share)]
    to_delete = set(picked[share(edit_share) : share(edit_share) + share(delete_share)])
    to_review = picked[share(edit_share) + share(delete_share) :]
    for index in to_edit:
        records[index] = edit_submission(records[index], _correction(records[index], rng), seed=seed)
    for index in to_review:
        sub = records[index]
        uid = "validation_status_not_approved" if rng.random() < 0.6 else "validation_status_approved"
        stamp = dt.datetime.fromisoformat(sub["_submission_time"]).replace(tzinfo=dt.UTC)
        records[index] = set_validation_status(sub, uid, timestamp=int(stamp.timestamp()) + 86400 * 20)
    return Revision(
        submissions=[sub for i, sub in enumerate(records) if i not in to_delete],
        edited=tuple(records[i]["_id"] for i in to_edit),
        deleted=tuple(sorted(records[i]["_id"] for i in to_delete)),
        reviewed=tuple(records[i]["_id"] for i in to_review),
    )


def _malformed_field(submission: Mapping[str, Any]) -> str:
    for field, bad in MALFORMED_VALUES.items():
        if submission.get(FIELD_PATHS[field]) == bad:
            return field
    return ""


def _correction(submission: Mapping[str, Any], rng: random.Random) -> dict[str, str]:
    field = _malformed_field(submission)
    if field == ind.EVENT_DATE:
        return {field: submission["_submission_time"][:10]}
    if field == ind.AGE_YEARS:
        return {field: str(rng.randint(18, 45))}
    if field == ind.GENDER:
        return {field: "female"}
    age = submission.get(FIELD_PATHS[ind.AGE_YEARS])
    if age is not None and rng.random() < 0.4:
        return {ind.AGE_YEARS: str(max(0, int(age) + rng.choice((-2, -1, 1, 2))))}
    earlier = dt.date.fromisoformat(submission[_K_DATE]) - dt.timedelta(days=rng.randint(10, 60))
    return {ind.EVENT_DATE: earlier.isoformat()}


def write_export(submissions: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write submissions as one Kobo data-API page (``{"count", "next", "previous", "results"}``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    envelope = {"count": len(submissions), "next": None, "previous": None, "results": list(submissions)}
    with path.open("w", encoding="utf-8") as handle:
        json.dump(envelope, handle, ensure_ascii=False)
    return path
