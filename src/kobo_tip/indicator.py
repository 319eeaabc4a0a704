"""The indicator specification as Python data: field names, choice names, variants, dimensions.

Everything here is fixed by ``docs/contract.md``; the form builder, the connectors, the
counting engine and the reports all read it from this one place.
"""

from __future__ import annotations

import itertools
from typing import Final

FORM_ID: Final = "tip_victims"

# Field names (contract section 2). Unique in the form, whatever group holds them.
CONSENT_STATEMENT: Final = "consent_statement"  # a note: the statement read aloud
IMMEDIATE_DANGER: Final = "immediate_danger"
EMERGENCY_REFERRAL: Final = "emergency_referral"  # a note: follow the emergency referral procedure now
CONSENT: Final = "consent"
CONSENT_BY: Final = "consent_by"
EVENT_DATE: Final = "event_date"
ACTION: Final = "action"
STAKEHOLDER_TYPE: Final = "stakeholder_type"
STAKEHOLDER_ID: Final = "stakeholder_id"
STAKEHOLDER_OTHER_ORG: Final = "stakeholder_other_org"
IDENTIFICATION_COUNTRY: Final = "identification_country"
LOCATION_ADMIN1: Final = "location_admin1"
LOCATION_ADMIN2: Final = "location_admin2"
CASE_REF: Final = "case_ref"
PERSON_CATEGORY: Final = "person_category"
EXPLOITATION_TYPE: Final = "exploitation_type"
GBV_TYPE: Final = "gbv_type"
UIC_GIVEN: Final = "uic_given"
UIC_MOTHER: Final = "uic_mother"
BIRTH_YEAR: Final = "birth_year"
GENDER: Final = "gender"
AGE_YEARS: Final = "age_years"
AGE_ESTIMATED: Final = "age_estimated"
COUNTRY_ORIGIN: Final = "country_origin"
ETHNICITY: Final = "ethnicity"
WG_FIELDS: Final = (
    "wg_seeing",
    "wg_hearing",
    "wg_walking",
    "wg_cognition",
    "wg_selfcare",
    "wg_communication",
)
REPORTED_ELSEWHERE: Final = "reported_elsewhere"
SERVICES: Final = "services"
REFERRAL_OUTCOME: Final = "referral_outcome"
REFERRAL_ORG: Final = "referral_org"
REFERRAL_DATE: Final = "referral_date"
CONSENT_TO_SHARE: Final = "consent_to_share"
FOLLOW_UP_DATE: Final = "follow_up_date"
FORM_VERSION: Final = "form_version"

# The raw UIC parts: removed before anything is written to the store.
UIC_PARTS: Final = (UIC_GIVEN, UIC_MOTHER)

# Groups (contract section 2).
GROUP_INTRO: Final = "intro"
GROUP_EVENT: Final = "event"
GROUP_PERSON: Final = "person"
GROUP_WG: Final = "wg"
GROUP_REFERRAL: Final = "referral"

# The group path of every answer of the form (contract section 2), in form order.
FIELD_GROUPS: Final[dict[str, str]] = {
    **dict.fromkeys((IMMEDIATE_DANGER, CONSENT, CONSENT_BY), GROUP_INTRO),
    **dict.fromkeys(
        (
            EVENT_DATE,
            ACTION,
            STAKEHOLDER_TYPE,
            STAKEHOLDER_ID,
            STAKEHOLDER_OTHER_ORG,
            IDENTIFICATION_COUNTRY,
            LOCATION_ADMIN1,
            LOCATION_ADMIN2,
            CASE_REF,
            PERSON_CATEGORY,
            EXPLOITATION_TYPE,
            GBV_TYPE,
        ),
        GROUP_EVENT,
    ),
    **dict.fromkeys(
        (
            UIC_GIVEN,
            UIC_MOTHER,
            BIRTH_YEAR,
            GENDER,
            AGE_ESTIMATED,
            AGE_YEARS,
            COUNTRY_ORIGIN,
            ETHNICITY,
            REPORTED_ELSEWHERE,
        ),
        GROUP_PERSON,
    ),
    **dict.fromkeys(WG_FIELDS, f"{GROUP_PERSON}/{GROUP_WG}"),
    **dict.fromkeys(
        (SERVICES, REFERRAL_OUTCOME, REFERRAL_ORG, REFERRAL_DATE, CONSENT_TO_SHARE, FOLLOW_UP_DATE),
        GROUP_REFERRAL,
    ),
}

# The answers counting reads (contract sections 4 and 7): the store keeps these column by column.
COUNTED_FIELDS: Final = (
    CONSENT,
    EVENT_DATE,
    ACTION,
    STAKEHOLDER_TYPE,
    STAKEHOLDER_ID,
    IDENTIFICATION_COUNTRY,
    LOCATION_ADMIN1,
    LOCATION_ADMIN2,
    PERSON_CATEGORY,
    EXPLOITATION_TYPE,
    GBV_TYPE,
    BIRTH_YEAR,
    GENDER,
    AGE_YEARS,
    COUNTRY_ORIGIN,
    ETHNICITY,
    *WG_FIELDS,
    SERVICES,
    STAKEHOLDER_OTHER_ORG,  # not counted: named in the internal data-quality list
)

# The form_version a submission is stored with when a metadata value of it (_uuid, form_version,
# __version__, _submission_time) was not in its own shape: the value is not stored, and the internal
# report's data-quality list names the submission.
MISSHAPEN_METADATA: Final = "(metadata not in its shape)"

NOT_LISTED: Final = "not_listed"
STATELESS: Final = "stateless"
UNKNOWN: Final = "unknown"
NOT_RECORDED: Final = "not_recorded"
NOT_ASKED: Final = "not_asked"

# Choice lists (contract section 2): list name -> choice names, in display order.
CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "yes_no": ("yes", "no"),
    "yes_no_unknown": ("yes", "no", "unknown"),
    "consent_by": ("person", "guardian_with_assent", "caseworker_best_interests"),
    "action": ("identified", "referred"),
    "stakeholder_type": (
        "border_control",
        "labour_inspector",
        "ngo_partner",
        "private_sector",
        "community_member",
        "other_government",
        "other",
    ),
    "person_category": (
        "trafficking_presumed",
        "trafficking_confirmed",
        "exploitation_other",
        "gbv",
    ),
    "exploitation_type": (
        "forced_labour",
        "sexual_exploitation",
        "child_labour",
        "forced_marriage",
        "servitude",
        "forced_military",
        "organ_removal",
        "forced_begging",
        "forced_adoption",
        "surrogacy",
        "other",
    ),
    "gbv_type": (
        "rape",
        "sexual_assault",
        "physical_assault",
        "forced_marriage",
        "denial_of_resources",
        "psychological_abuse",
        "non_gbv",
    ),
    "gender": ("female", "male", "non_binary_other", "prefer_not_to_say", "unknown"),
    "wg_difficulty": (
        "no_difficulty",
        "some_difficulty",
        "a_lot_of_difficulty",
        "cannot_do_at_all",
        "dont_know",
        "refused",
    ),
    "reported_elsewhere": ("no", "yes_project_partner", "yes_other_org", "unknown"),
    "service": (
        "shelter",
        "medical",
        "psychosocial",
        "legal_aid",
        "law_enforcement",
        "documentation",
        "basic_needs",
        "return_repatriation",
        "reintegration",
        "livelihood",
        "education",
        "child_protection",
        "interpretation",
        "emergency_transport",
        "other",
    ),
    "referral_outcome": (
        "referred",
        "provided_by_own_agency",
        "already_received",
        "not_applicable",
        "declined",
        "unavailable",
    ),
}

# Country list extras after the ISO 3166-1 alpha-2 codes.
COUNTRY_EXTRAS: Final = (STATELESS, UNKNOWN)

# Which choice list each select question uses (lists built from config: stakeholder,
# country, admin1, admin2, ethnicity, referral_org).
FIELD_LIST: Final[dict[str, str]] = {
    IMMEDIATE_DANGER: "yes_no_unknown",
    CONSENT: "yes_no",
    CONSENT_BY: "consent_by",
    ACTION: "action",
    STAKEHOLDER_TYPE: "stakeholder_type",
    STAKEHOLDER_ID: "stakeholder",
    IDENTIFICATION_COUNTRY: "country",
    LOCATION_ADMIN1: "admin1",
    LOCATION_ADMIN2: "admin2",
    PERSON_CATEGORY: "person_category",
    EXPLOITATION_TYPE: "exploitation_type",
    GBV_TYPE: "gbv_type",
    GENDER: "gender",
    AGE_ESTIMATED: "yes_no",
    COUNTRY_ORIGIN: "country",
    ETHNICITY: "ethnicity",
    **dict.fromkeys(WG_FIELDS, "wg_difficulty"),
    REPORTED_ELSEWHERE: "reported_elsewhere",
    SERVICES: "service",
    REFERRAL_OUTCOME: "referral_outcome",
    REFERRAL_ORG: "referral_org",
    CONSENT_TO_SHARE: "yes_no",
}

SELECT_MULTIPLE_FIELDS: Final = frozenset({ACTION, PERSON_CATEGORY, EXPLOITATION_TYPE, SERVICES})

# Indicator variants (contract section 1) and the actions each one takes.
VARIANTS: Final[dict[str, frozenset[str]]] = {
    "identified_or_referred": frozenset({"identified", "referred"}),
    "identified": frozenset({"identified"}),
    "referred": frozenset({"referred"}),
}
HEADLINE_VARIANT: Final = "identified_or_referred"

# Review status in the store (contract section 4, rule 2).
REVIEW_STATUSES: Final = ("approved", "rejected", "on_hold", "unreviewed")
KOBO_REVIEW_STATUS: Final[dict[str, str]] = {
    "validation_status_approved": "approved",
    "validation_status_not_approved": "rejected",
    "validation_status_on_hold": "on_hold",
}
CENTRAL_REVIEW_STATUS: Final[dict[str, str]] = {
    "approved": "approved",
    "rejected": "rejected",
    "hasIssues": "on_hold",
    # Central sets 'edited' on every edit: the edited version has not been reviewed, so with
    # require_approved it counts again only once someone approves it.
    "edited": "unreviewed",
}

# Exclusion rules in the contract's order (section 4), then the findings.
EXCLUSION_RULES: Final = (
    "deleted",
    "rejected",
    "not_approved",
    "date_missing",
    "date_out_of_range",
    "date_in_future",
    "action_missing",
    "stakeholder_not_on_roster",
    "event_before_training",
    "category_not_counted",
)
FINDING_RULES: Final = ("malformed", "not_linkable", "possible_duplicate")

# Dimensions (contract section 7). Additive dimensions sum to the period total.
DIMENSIONS: Final = (
    "total",
    "age_band",
    "gender",
    "location",
    "country_of_origin",
    "stakeholder_type",
    "disability",
    "ethnicity",
    "age_band_x_gender",
)
MULTI_RESPONSE_DIMENSIONS: Final = (
    "person_category",
    "exploitation_type",
    "gbv_type",
    "services",
)
# Dimensions in which each counted person is in exactly one category, so the categories sum to the
# period total (contract section 6): the additive ones and gbv_type, a select_one whose ``unknown``
# holds everyone it was not asked of.
SINGLE_RESPONSE_DIMENSIONS: Final = (
    *(d for d in DIMENSIONS if d not in ("total", "age_band_x_gender")),
    "gbv_type",
)
# Multi-response dimensions: a person counts in every category selected, in ``unknown`` when none.
AT_LEAST_ONE_DIMENSIONS: Final = ("person_category", "exploitation_type", "services")
PERSONAL_DIMENSIONS: Final = frozenset({"age_band", "gender", "country_of_origin", "disability", "ethnicity"})
DISABILITY_CATEGORIES: Final = ("yes", "no", NOT_ASKED, UNKNOWN, NOT_RECORDED)

AGE_BANDS_DEFAULT: Final = (0, 5, 12, 18, 60)
AGE_BANDS_PRESETS: Final[dict[str, tuple[int, ...]]] = {
    "default": AGE_BANDS_DEFAULT,
    "unhcr": AGE_BANDS_DEFAULT,
    "ctdc": (0, 9, 18, 21, 24, 27, 30, 39, 48),
}


def age_band_labels(lower_bounds: tuple[int, ...]) -> tuple[str, ...]:
    """Labels for age bands from their lower bounds: (0, 5, 18) -> 0-4, 5-17, 18+."""
    labels = [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(lower_bounds)]
    labels.append(f"{lower_bounds[-1]}+")
    return tuple(labels)


COUNTS_COLUMNS: Final = (
    "indicator",
    "period",
    "period_start",
    "period_end",
    "dimension",
    "category",
    "value",
)
DATA_QUALITY_COLUMNS: Final = ("submission_id", "rule", "field", "detail")
RESTATEMENT_COLUMNS: Final = (
    "indicator",
    "period",
    "dimension",
    "category",
    "old",
    "new",
    "reason",
)
INTERNAL: Final = "internal"  # the audience that sees every count, for whom no cell is hidden
AUDIENCES: Final = (INTERNAL, "donor", "public")
DEFAULT_MIN_CELL: Final[dict[str, int]] = {"donor": 5, "public": 10}
