"""The pseudonymous person key of contract section 3: HMAC-SHA-256 of the UIC string.

Computed when a submission enters the store; the raw UIC parts never reach the store.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import unicodedata
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from kobo_tip import indicator as ind
from kobo_tip.answers import find_values, without_fields
from kobo_tip.errors import StoreError

if TYPE_CHECKING:
    from kobo_tip.store import Store

KEY_FIELDS = (
    ind.CONSENT,
    ind.UIC_GIVEN,
    ind.UIC_MOTHER,
    ind.BIRTH_YEAR,
    ind.GENDER,
    ind.STAKEHOLDER_ID,
    ind.CASE_REF,
)
_GENDER_CODE = {"female": "F", "male": "M"}
NO_CONSENT = "no consent recorded"  # the reason a person declined to be linked: not a data problem


class PersonKey(NamedTuple):  # a tuple: one is made for every submission synced
    """``basis`` is ``uic``, ``case_ref`` or ``submission``; ``reason`` says why not ``uic``."""

    key: str
    basis: str
    reason: str = ""

    @property
    def linkable(self) -> bool:
        return self.basis == "uic"


@functools.lru_cache(maxsize=65_536)  # names repeat: most parts are normalised once
def normalise_part(text: str) -> str:
    """NFKD, drop marks, upper-case, keep alphanumerics, first two, padded with 9."""
    decomposed = unicodedata.normalize("NFKD", text)
    unmarked = "".join(ch for ch in decomposed if not unicodedata.category(ch).startswith("M"))
    kept = "".join(ch for ch in unmarked.upper() if ch.isalnum())
    return (kept[:2] + "99")[:2]


def _as_text(value: Any) -> str | None:
    if type(value) is str:
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value).strip()


def _as_year(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def uic_string(given: str, mother: str, birth_year: int, gender: str | None) -> str:
    """``MAAN1990F`` for (Maria, ANA, 1990, female)."""
    return (
        normalise_part(given) + normalise_part(mother) + str(birth_year) + _GENDER_CODE.get(gender or "", "X")
    )


def _hmac(secret: bytes, message: str) -> str:
    keyed = _keyed(secret).copy()
    keyed.update(message.encode("utf-8"))
    return keyed.hexdigest()


def _sha256(data: bytes = b"") -> Any:
    return hashlib.sha256(data)


@functools.lru_cache(maxsize=4)
def _keyed(secret: bytes) -> hmac.HMAC:
    # Copying a keyed HMAC skips the key set-up per message. A plain function as digestmod keeps
    # hmac on its copy-the-hash-states path: OpenSSL 3's own HMAC context costs more per message.
    return hmac.new(secret, digestmod=_sha256)


def person_key(data: Mapping[str, Any], submission_id: str, secret: bytes) -> PersonKey:
    """The person key of one raw submission (any key style)."""
    return key_of_values(find_values(data, KEY_FIELDS), submission_id, secret)


def key_of_values(values: Sequence[Any], submission_id: str, secret: bytes) -> PersonKey:
    """The person key from the answers of ``KEY_FIELDS``, in that order (None: unanswered)."""
    return PersonKey(*key_parts(values, submission_id, secret))


def key_parts(values: Sequence[Any], submission_id: str, secret: bytes) -> tuple[str, str, str]:
    """``key_of_values`` as a plain tuple (key, basis, reason): what sync makes for every submission."""
    consent, given_answer, mother_answer, year_answer, gender, stakeholder_id, case_ref_answer = values
    given = _as_text(given_answer)
    mother = _as_text(mother_answer)
    year = _as_year(year_answer)
    if given and mother and year is not None and consent == "yes":
        uic = uic_string(given, mother, year, gender if isinstance(gender, str) else None)
        return _hmac(secret, uic), "uic", ""
    reason = _unlinkable_reason(consent, given_answer, mother_answer, year_answer)
    case_ref = _as_text(case_ref_answer)
    if case_ref:
        stakeholder = _as_text(stakeholder_id) or ""
        ref = unicodedata.normalize("NFKC", case_ref).upper()
        return _hmac(secret, f"{stakeholder}|{ref}"), "case_ref", reason
    return _hmac(secret, f"submission:{submission_id}"), "submission", reason


def _unlinkable_reason(consent: Any, given: Any, mother: Any, year: Any) -> str:
    if consent != "yes":
        return NO_CONSENT
    for name, value in ((ind.UIC_GIVEN, given), (ind.UIC_MOTHER, mother)):
        if value is None:
            return f"{name} missing"
        if not _as_text(value):
            return f"{name} invalid"
    if year is None:
        return f"{ind.BIRTH_YEAR} missing"
    if _as_year(year) is None:
        return f"{ind.BIRTH_YEAR} not an integer"
    return ""


def strip_uic(data: Mapping[str, Any]) -> dict[str, Any]:
    """The submission without its raw UIC parts."""
    return without_fields(data, ind.UIC_PARTS)


# An HMAC of a fixed message tells whether today's secret is the store's, without revealing it.
FINGERPRINT = "secret_fingerprint"
_FINGERPRINT_MESSAGE = b"kobo-tip person-key secret check"


def secret_fingerprint(secret: bytes) -> str:
    """What a store records of the secret its keys were made with (``meta`` ``FINGERPRINT``)."""
    return hmac.new(secret, _FINGERPRINT_MESSAGE, hashlib.sha256).hexdigest()


def check_secret(store: Store, secret: bytes, env_name: str) -> None:
    """Refuse to mix person keys made with two secrets: the same person would count twice."""
    fingerprint = secret_fingerprint(secret)
    recorded = store.meta_value(FINGERPRINT)
    if recorded is None:
        store.set_meta_value(FINGERPRINT, fingerprint)
    elif recorded != fingerprint:
        raise StoreError(
            f"The person-key secret in {env_name} is not the one the store {store.path} was keyed with: "
            "set the old secret again, or move the store away and sync everything anew."
        )
