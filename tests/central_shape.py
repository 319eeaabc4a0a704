"""The synthetic Kobo submissions of ``kobo_tip.synthetic`` in ODK Central's OData shape, for tests."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from kobo_tip import indicator as ind

INTEGER_FIELDS: Final = (ind.AGE_YEARS, ind.BIRTH_YEAR)  # JSON numbers in Central's rows
_INTEGER: Final = re.compile(r"-?[0-9]+")
_CENTRAL_REVIEW_STATE: Final = {
    "validation_status_approved": "approved",
    "validation_status_not_approved": "rejected",
    "validation_status_on_hold": "hasIssues",
}


def to_central(submission: Mapping[str, Any], *, updated_at: str | None = None) -> dict[str, Any]:
    """One Kobo-shape submission as ODK Central's OData returns it.

    Groups become nested objects, ``__id`` is the first version's instanceID, ``__system``
    carries submissionDate (ISO with Z), updatedAt (``updated_at``, else null), reviewState
    and formVersion; age_years and birth_year become JSON numbers when they are integers.
    """
    edited = "meta/deprecatedID" in submission
    status = (submission.get("_validation_status") or {}).get("uid", "")
    row: dict[str, Any] = {
        "__id": submission["meta/rootUuid"],
        "__system": {
            "submissionDate": submission["_submission_time"] + ".000Z",
            "updatedAt": updated_at,
            "deletedAt": None,
            "submitterId": "5",
            "submitterName": submission.get("_submitted_by") or "Public access",
            "attachmentsPresent": 0,
            "attachmentsExpected": 0,
            "status": None,
            "reviewState": _CENTRAL_REVIEW_STATE.get(status, "edited" if edited else None),
            "deviceId": submission.get("deviceid"),
            "edits": int(edited),
            "formVersion": submission.get(ind.FORM_VERSION, ""),
        },
    }
    for key, value in submission.items():
        if key.startswith("_") or key.startswith("formhub/") or key in ("meta/rootUuid", "meta/deprecatedID"):
            continue
        *groups, name = key.split("/")
        node = row
        for group in groups:
            node = node.setdefault(group, {})
        # A malformed value stays the string it was.
        node[name] = int(value) if name in INTEGER_FIELDS and _INTEGER.fullmatch(value) else value
    return row
