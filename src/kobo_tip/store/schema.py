"""The store's tables (SQLite's types; ``postgres`` maps them) and the steps between versions."""

from __future__ import annotations

from kobo_tip import indicator as ind

SCHEMA_VERSION = 7

# The answers counting reads, one column each: the code of the answer in answer_values.
ANSWER_COLUMNS = ind.COUNTED_FIELDS
SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Narrow rows: counting scans this table, so the submission itself lives in submission_data.
CREATE TABLE submissions (
    row_id INTEGER PRIMARY KEY,
    submission_id TEXT NOT NULL UNIQUE,
    id_order INTEGER,
    version_id TEXT NOT NULL,
    review_status TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    form_version TEXT NOT NULL,
    person_key TEXT NOT NULL,
    key_basis TEXT NOT NULL,
    key_reason TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL, -- when a new or changed copy last arrived
    deleted_at TEXT,
    deleted_run INTEGER,
    changed INTEGER NOT NULL DEFAULT 0, -- the write that last changed the row (CHANGE_MARK)
    {", ".join(f'"{field}" INTEGER NOT NULL' for field in ANSWER_COLUMNS)} -- 0: unanswered
);
-- "What changed since": serve's render reads only the rows written after the mark it last saw.
CREATE INDEX submissions_by_change ON submissions (changed);
-- The submission as the server sent it, less the UIC parts and review-state keys.
CREATE TABLE submission_data (row_id INTEGER PRIMARY KEY, data TEXT NOT NULL);
-- Each distinct answer of a field once, coded 1, 2, 3...: submissions.<field> holds the code. A string is
-- TEXT, anything else (a number from Central, a malformed list) is its JSON as a BLOB.
CREATE TABLE answer_values (
    field TEXT NOT NULL,
    code INTEGER NOT NULL,
    value NOT NULL,
    PRIMARY KEY (field, code)
);
CREATE TABLE watermarks (name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    source TEXT NOT NULL,
    fetched INTEGER NOT NULL DEFAULT 0,
    new INTEGER NOT NULL DEFAULT 0,
    edited INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    status_changed INTEGER NOT NULL DEFAULT 0,
    seconds REAL,
    error TEXT,
    retries TEXT  -- the requests retried during the run, one line each (what failed, the wait)
);
-- What each audience was shown: every cell's true value and published text (columns as
-- compressed JSON), the k it was published at (0: internal) and the day it counted through.
CREATE TABLE releases (
    id INTEGER PRIMARY KEY,
    audience TEXT NOT NULL,
    released_at TEXT NOT NULL,
    k INTEGER NOT NULL,
    through TEXT NOT NULL,
    last_run INTEGER NOT NULL,
    cells BLOB NOT NULL
);
CREATE INDEX releases_by_audience ON releases (audience, id);
-- The as-reported ledger (contract section 4): what outside audiences were shown of each quarter,
-- frozen at its first outside release. Per indicator (a programme's projects' scoped), the quarters
-- released (seeded: its cells taken from a release made before the ledger, its persons from the
-- submissions sent before that release),
-- their cells' true values, and each person key released with its quarter and categories (JSON).
CREATE TABLE ledger_quarters (
    indicator TEXT NOT NULL,
    quarter TEXT NOT NULL,
    released_at TEXT NOT NULL,
    seeded INTEGER NOT NULL,
    PRIMARY KEY (indicator, quarter)
);
CREATE TABLE ledger_cells (
    indicator TEXT NOT NULL,
    quarter TEXT NOT NULL,
    dimension TEXT NOT NULL,
    category TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (indicator, quarter, dimension, category)
);
CREATE TABLE ledger_persons (
    indicator TEXT NOT NULL,
    person_key TEXT NOT NULL,
    quarter TEXT NOT NULL,
    submission_id TEXT NOT NULL,
    released_at TEXT NOT NULL,
    categories TEXT NOT NULL,
    PRIMARY KEY (indicator, person_key)
);
-- How many outside releases (k > 0) of each audience were ever recorded, counted by a trigger
-- (RELEASE_MARKS_SQLITE, or postgres' own) that no role but the owner can undo: fewer releases
-- than this means the history the audit reads has lost some (status says so, a report refuses).
CREATE TABLE release_marks (audience TEXT PRIMARY KEY, released INTEGER NOT NULL);
"""
# Each step takes a store from the version before it to the next (``kobo-tip store migrate``).
MIGRATIONS: dict[int, str] = {
    # 2 -> 3: releases replace publications, which kept published text only and cannot be audited;
    # the release history starts afresh (contract section 6). Then every stored submission is scrubbed
    # of UIC parts that older versions let through (keys split by '.' or ':', answers in lists).
    3: SCHEMA[SCHEMA.index("-- What each audience was shown") : SCHEMA.index("-- The as-reported ledger")]
    + ";DROP TABLE publications"
    + f';ALTER TABLE submissions ADD COLUMN "{ind.STAKEHOLDER_OTHER_ORG}" INTEGER NOT NULL DEFAULT 0',
    # 3 -> 4: the run log says which requests were retried.
    4: "ALTER TABLE runs ADD COLUMN retries TEXT",
    # 4 -> 5: the as-reported ledger. A store with outside releases starts it from them at its next
    # outside release (``kobo_tip.ledger``): the release cells are compressed, beyond SQL's reach.
    5: SCHEMA[SCHEMA.index("-- The as-reported ledger") : SCHEMA.index("-- How many outside releases")],
    # 5 -> 6: outside releases counted where a reporting role cannot lower the count, from those
    # the store holds now. The back end then adds its trigger (and PostgreSQL its row policies and
    # the project's random lock key).
    6: SCHEMA[SCHEMA.index("-- How many outside releases") :]
    + ";INSERT INTO release_marks (audience, released) "
    + "SELECT audience, count(*) FROM releases WHERE k > 0 GROUP BY audience",
    # 6 -> 7: each write numbers the rows it changes, so serve's render reads only those. The rows
    # stored before are 0: a render counts them all once anyway.
    7: "ALTER TABLE submissions ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;"
    + SCHEMA[SCHEMA.index("CREATE INDEX submissions_by_change") : SCHEMA.index("-- The submission as")],
}
RELEASE_MARKS_AT = 6
# SQLite's trigger counting outside releases: one statement (its body holds ';'). An UPDATE of k
# or audience is not counted: kobo-tip never updates a release.
RELEASE_MARKS_SQLITE = """
CREATE TRIGGER count_outside_release AFTER INSERT ON releases WHEN NEW.k > 0
BEGIN
    INSERT INTO release_marks (audience, released) VALUES (NEW.audience, 1)
    ON CONFLICT (audience) DO UPDATE SET released = released + 1;
END
"""
SCRUBBED_AT = 3  # the migration after which stored submissions are scrubbed
ANSWER_NAMES = ", ".join(f'"{field}"' for field in ANSWER_COLUMNS)
ANSWER_UPDATES = ", ".join(f'"{field}" = ?' for field in ANSWER_COLUMNS)
INSERT_SUBMISSION = (
    "INSERT INTO submissions (row_id, submission_id, id_order, version_id, review_status, submitted_at, "
    "form_version, person_key, key_basis, key_reason, first_seen, last_seen, changed, "
    f"{ANSWER_NAMES}) VALUES ({', '.join('?' * (13 + len(ANSWER_COLUMNS)))})"
)
UPDATE_SUBMISSION = (
    "UPDATE submissions SET version_id = ?, review_status = ?, submitted_at = ?, form_version = ?, "
    "person_key = ?, key_basis = ?, key_reason = ?, last_seen = ?, changed = ?, "
    f"{ANSWER_UPDATES}, "
    "deleted_at = NULL, deleted_run = NULL WHERE row_id = ?"
)

# The number of the write in hand: one more than any row's, in the transaction (whose write lock
# makes the numbers follow the commits), so every row a write changes gets a number above any mark
# a reader took before it committed.
CHANGE_MARK = "SELECT coalesce(max(changed), 0) FROM submissions"

# The text columns of a submission that counting reads.
TABLE_TEXTS = (
    "submission_id",
    "review_status",
    "submitted_at",
    "form_version",
    "person_key",
    "key_basis",
    "key_reason",
)
