"""The person key of contract section 3: UIC normalisation vectors, HMAC, fallbacks, stripping."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from kobo_tip.person_key import normalise_part, person_key, strip_uic, uic_string

SECRET = b"test-secret-not-for-production"


def expected(message: str) -> str:
    return hmac.new(SECRET, message.encode("utf-8"), hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("Maria", "MA"),
        ("jó", "JO"),
        ("  o'Neil", "ON"),
        ("ß", "SS"),
        ("Zoë", "ZO"),
        ("สมศรี", "สม"),
        ("นิด", "นด"),
        ("မြ", "မ9"),
        ("", "99"),
        ("A", "A9"),
    ],
)
def test_spec_normalisation_vectors(text, part):
    assert normalise_part(text) == part


def test_uic_string_vector():
    assert uic_string("Maria", "ANA", 1990, "female") == "MAAN1990F"
    assert uic_string("Maria", "ANA", 1990, "male") == "MAAN1990M"
    assert uic_string("Maria", "ANA", 1990, "non_binary_other") == "MAAN1990X"
    assert uic_string("Maria", "ANA", 1990, None) == "MAAN1990X"


def kobo(changes: dict[str, object] | None = None) -> dict[str, object]:
    """A Kobo-style submission; ``changes`` replace answers, None removes one."""
    data: dict[str, object] = {
        "intro/consent": "yes",
        "event/stakeholder_id": "bc_maesot",
        "person/uic_given": "Maria",
        "person/uic_mother": "ANA",
        "person/birth_year": "1990",
        "person/gender": "female",
    }
    data.update(changes or {})
    return {key: value for key, value in data.items() if value is not None}


def test_key_is_the_hmac_of_the_uic_string_in_every_key_style():
    key = person_key(kobo(), "1", SECRET)
    assert (key.key, key.basis, key.reason, key.linkable) == (expected("MAAN1990F"), "uic", "", True)
    central = {
        "intro": {"consent": "yes"},
        "event": {"stakeholder_id": "bc_maesot"},
        "person": {"uic_given": "maría", "uic_mother": "Ána", "birth_year": 1990, "gender": "female"},
    }
    assert person_key(central, "uuid:abc", SECRET).key == expected("MAAN1990F")
    csv_style = {
        "intro-consent": "yes",
        "person-uic_given": "MA",
        "person-uic_mother": "an",
        "person-birth_year": "1990",
        "person-gender": "female",
    }
    assert person_key(csv_style, "7", SECRET).key == expected("MAAN1990F")


def test_case_and_accents_link_the_same_person():
    keys = {
        person_key(kobo({"person/uic_given": given, "person/uic_mother": mother}), str(sid), SECRET).key
        for sid, (given, mother) in enumerate([("Maria", "Ana"), ("MARÍA", "ána"), (" mä-ri", "AN")])
    }
    assert keys == {expected("MAAN1990F")}


def test_without_consent_the_key_falls_back_to_the_case_ref():
    data = kobo({"intro/consent": "no", "event/case_ref": "  ab-１２ "})
    key = person_key(data, "9", SECRET)
    assert (key.key, key.basis, key.reason) == (
        expected("bc_maesot|AB-12"),
        "case_ref",
        "no consent recorded",
    )


def test_without_case_ref_the_key_is_the_submission_itself():
    key = person_key({"event/stakeholder_id": "bc_maesot"}, "42", SECRET)
    assert (key.key, key.basis, key.reason) == (
        expected("submission:42"),
        "submission",
        "no consent recorded",
    )
    assert person_key({}, "43", SECRET).key != key.key


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"person/uic_given": None}, "uic_given missing"),
        ({"person/uic_mother": "   "}, "uic_mother invalid"),
        ({"person/birth_year": None}, "birth_year missing"),
        ({"person/birth_year": "19x0"}, "birth_year not an integer"),
        ({"person/birth_year": True}, "birth_year not an integer"),
        ({"person/uic_given": ["Ma"]}, "uic_given invalid"),
    ],
)
def test_an_invalid_uic_part_is_not_linkable(change, reason):
    key = person_key(kobo(change), "5", SECRET)
    assert (key.basis, key.reason, key.linkable) == ("submission", reason, False)


def test_strip_uic_removes_only_the_two_parts_at_any_depth():
    central = {"person": {"uic_given": "Ma", "uic_mother": "An", "birth_year": 1990}, "event": {"x": 1}}
    assert strip_uic(central) == {"person": {"birth_year": 1990}, "event": {"x": 1}}
    assert strip_uic(kobo()) == {
        "intro/consent": "yes",
        "event/stakeholder_id": "bc_maesot",
        "person/birth_year": "1990",
        "person/gender": "female",
    }
