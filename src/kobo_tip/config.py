"""TOML configuration -> typed, validated settings. Secrets only from the environment."""

from __future__ import annotations

import codecs
import csv
import dataclasses
import datetime as dt
import difflib
import grp
import io
import itertools
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pycountry

from kobo_tip import indicator
from kobo_tip.errors import ConfigError, SecretMissingError, WeakSecretError

DEFAULT_CONFIG_NAME = "kobo-tip.toml"

_LANGUAGE_RE = re.compile(r"^(?P<name>[^()]+?)\s*\((?P<code>[A-Za-z]{2,3}(?:-[A-Za-z0-9]+)*)\)$")
_CHOICE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Language:
    """A form language as XLSForm writes it: ``English (en)``."""

    label: str  # "English (en)", the XLSForm column suffix
    name: str  # "English"
    code: str  # "en"
    # The project's own translations (``translations/`` beside the config), read before the ones
    # kobo-tip ships: a team adds a language without touching the package.
    folder: Path | None = None


@dataclass(frozen=True)
class Stakeholder:
    """One roster row: a stakeholder the project trained or supports."""

    id: str
    name: str
    type: str
    trained_on: dt.date | None
    # The partner organisation the stakeholder belongs to (the roster's optional column), "" if none.
    organisation: str = ""


@dataclass(frozen=True)
class Location:
    """One locations row: admin1 (parent: lower-case country code) or admin2 (parent: admin1)."""

    level: int
    code: str
    name: str
    parent: str


@dataclass(frozen=True)
class ReferralOrg:
    """One referral directory row: an organisation a person can be referred to, and its services."""

    id: str
    name: str
    services: tuple[str, ...]  # names of the ``service`` choice list


@dataclass(frozen=True)
class ProjectSettings:
    name: str
    country: str  # lower-case ISO alpha-2
    start_date: dt.date
    end_date: dt.date
    fiscal_year_start_month: int
    languages: tuple[Language, ...]
    report_language: Language


@dataclass(frozen=True)
class FormSettings:
    form_id: str
    title: str
    roster_path: Path
    roster: tuple[Stakeholder, ...]
    locations_path: Path | None  # None: ISO 3166-2 subdivisions of the project country
    locations: tuple[Location, ...]
    disability: bool
    ethnicities: tuple[str, ...]
    # The receiving organisations of referrals; empty leaves referral_org out of the form.
    referral_directory_path: Path | None = None
    referral_directory: tuple[ReferralOrg, ...] = ()


@dataclass(frozen=True)
class IndicatorSettings:
    merges_path: Path | None
    person_categories: tuple[str, ...]
    require_approved: bool
    require_event_after_training: bool
    age_bands: tuple[int, ...]  # lower bounds
    location_level: int


@dataclass(frozen=True)
class SourceSettings:
    kind: str  # kobo | odk_central | file
    url: str = ""
    asset_uid: str = ""
    token_env: str = "KOBO_TOKEN"
    reconcile_hours: float = 24.0
    project_id: int | None = None
    form_id: str = ""
    username_env: str = "ODK_CENTRAL_USERNAME"
    password_env: str = "ODK_CENTRAL_PASSWORD"
    path: Path | None = None
    page_size: int = 1000


@dataclass(frozen=True)
class PrivacySettings:
    secret_env: str
    min_cell: dict[str, int]


@dataclass(frozen=True)
class ReportSettings:
    out_dir: Path
    audiences: tuple[str, ...]
    formats: tuple[str, ...]
    group: str = ""  # a group that may read the reports of share_with_group (empty: owner only)
    share_with_group: tuple[str, ...] = ("donor", "public")
    stale_after_days: int = 7  # a report says how old its data are when the last sync is older
    # Above this share of submissions unreadable for the counting, outside reports are held back
    # until an officer has looked (``kobo_tip.readability``).
    max_unreadable_percent: float = 5.0
    # How outside audiences count (contract section 4): "as_reported" freezes a released quarter,
    # "event_date" counts every person in the quarter of their index event, as internal does.
    outside_basis: str = "as_reported"


@dataclass(frozen=True)
class Dhis2Settings:
    data_elements: dict[str, str]
    org_unit: str
    attribute_option_combo: str
    category_option_combos: dict[str, str]
    data_set: str = ""
    # The attribute option combo of targets (DHIS2 keeps targets as their own attribute option).
    target_attribute_option_combo: str = ""


@dataclass(frozen=True)
class TargetSettings:
    path: Path  # CSV, or an XLSX workbook
    sheet: str = ""  # the XLSX sheet; empty: the first
    margin_percent: int = 10  # achievement off target by more than this is flagged


HOOK_AUTH = ("basic", "header")


@dataclass(frozen=True)
class HookCredentials:
    """What KoboToolbox sends with every push, read from the environment: basic auth (``username``,
    ``password``) or a custom ``header`` carrying ``token``."""

    kind: str  # basic | header
    username: str = ""
    password: str = ""
    header: str = ""
    token: str = ""

    def __repr__(self) -> str:  # never the secrets, in a log or a traceback
        return f"HookCredentials(kind={self.kind!r}, header={self.header!r})"


@dataclass(frozen=True)
class ServeSettings:
    """``kobo-tip serve``: the push receiver, the poll schedule and the internal report's delay."""

    host: str = "127.0.0.1"
    port: int = 8080
    poll_minutes: int = 15  # incremental sync of the source this often (Kobo and Central alike)
    render_delay_seconds: float = 1.0  # after a change, wait this long for more before rendering
    max_body_kb: int = 1024  # a pushed submission larger than this is refused (413)
    queue_limit: int = 1000  # pushes waiting for the store; beyond it the receiver answers 503
    max_connections: int = 512  # at most; lowered to fit the open-file limit (LimitNOFILE)
    header_timeout_seconds: float = 10.0  # a request's headers must arrive within this
    body_timeout_seconds: float = 30.0  # and its body within this after them (else 408)
    keep_alive_seconds: int = 5  # an idle connection is closed after this
    hook_auth: str = "basic"  # basic | header: how Kobo's REST Service authenticates
    hook_username_env: str = "KOBO_TIP_HOOK_USERNAME"
    hook_password_env: str = "KOBO_TIP_HOOK_PASSWORD"
    hook_header: str = "X-Kobo-Tip-Token"
    hook_header_env: str = "KOBO_TIP_HOOK_TOKEN"
    status_token_env: str = "KOBO_TIP_STATUS_TOKEN"  # bearer token of GET /status

    def credentials(self) -> HookCredentials:
        """The push credentials from the environment; a short secret is refused like the person key's."""
        if self.hook_auth == "basic":
            username = read_secret(self.hook_username_env, "the user name Kobo's REST Service sends")
            password = _strong(self.hook_password_env, "the password Kobo's REST Service sends")
            return HookCredentials("basic", username=username, password=password)
        token = _strong(self.hook_header_env, f"the {self.hook_header} header Kobo's REST Service sends")
        return HookCredentials("header", header=self.hook_header, token=token)

    def status_token(self) -> str:
        return _strong(self.status_token_env, "the bearer token of the status endpoint")


@dataclass(frozen=True)
class Settings:
    path: Path  # the config file
    project: ProjectSettings
    form: FormSettings
    indicator: IndicatorSettings
    source: SourceSettings
    store_path: Path  # the SQLite file ([store] path), unless store_url names a PostgreSQL database
    privacy: PrivacySettings
    report: ReportSettings
    dhis2: Dhis2Settings | None = None
    targets: TargetSettings | None = None
    serve: ServeSettings = field(default_factory=ServeSettings)
    store_url: str = ""  # postgresql://user@host/db: the shared back end, with the project in store_schema
    store_schema: str = "kobo_tip"
    store_password_env: str = ""  # else libpq's own means (PGPASSWORD, ~/.pgpass)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def secret(self) -> bytes:
        """The person-key secret, read from the environment when needed; a short one is refused."""
        env_name = self.privacy.secret_env
        value = read_secret(env_name, "the person-key secret")
        if len(value) < MIN_SECRET_CHARS:
            raise WeakSecretError(
                f"{env_name} holds {len(value)} characters: a person-key secret needs at least "
                f"{MIN_SECRET_CHARS}, or anyone holding the store could find it by trying secrets and "
                "link the keys back to name codes. Make one with "
                "'python -c \"import secrets; print(secrets.token_urlsafe(32))\"', keep it safe and never "
                "change it (a store keyed with a short secret must be synced anew)."
            )
        return value.encode("utf-8")


TRANSLATIONS_FOLDER = "translations"  # beside the config: the project's own form translations
MIN_SECRET_CHARS = 20  # a random 20-character secret is far beyond guessing; "a" is not


def _strong(env_name: str, what: str) -> str:
    value = read_secret(env_name, what)
    if len(value) < MIN_SECRET_CHARS:
        raise WeakSecretError(
            f"{env_name} holds {len(value)} characters: {what} needs at least {MIN_SECRET_CHARS}, or it "
            "can be guessed. Make one with 'python -c \"import secrets; print(secrets.token_urlsafe(32))\"'."
        )
    return value


def read_secret(env_name: str, what: str) -> str:
    """Read a secret from the environment variable ``env_name``; never echo its value."""
    value = os.environ.get(env_name, "")
    if not value:
        raise SecretMissingError(
            f"Environment variable {env_name} is not set: it must hold {what} "
            f"(export {env_name}=...; it is never read from the config file)."
        )
    return value


# --- schema -----------------------------------------------------------------------------

_SCHEMA: dict[str, tuple[str, ...]] = {
    "project": (
        "name",
        "country",
        "start_date",
        "end_date",
        "fiscal_year_start_month",
        "languages",
        "report_language",
    ),
    "form": ("form_id", "title", "roster", "locations", "disability", "ethnicities", "referral_directory"),
    "indicator": (
        "merges",
        "person_categories",
        "require_approved",
        "require_event_after_training",
        "age_bands",
        "location_level",
    ),
    "source": (
        "kind",
        "url",
        "asset_uid",
        "token_env",
        "reconcile_hours",
        "project_id",
        "form_id",
        "username_env",
        "password_env",
        "path",
        "page_size",
    ),
    "store": ("path", "url", "schema", "password_env"),
    "privacy": ("secret_env", "min_cell"),
    "report": (
        "out_dir",
        "audiences",
        "formats",
        "group",
        "share_with_group",
        "stale_after_days",
        "max_unreadable_percent",
        "outside_basis",
    ),
    "dhis2": (
        "data_elements",
        "org_unit",
        "attribute_option_combo",
        "category_option_combos",
        "data_set",
        "target_attribute_option_combo",
    ),
    "targets": ("path", "sheet", "margin_percent"),
    "serve": tuple(ServeSettings.__dataclass_fields__),
}
_REQUIRED_SECTIONS = ("project", "form")
REPORT_FORMATS = ("html", "md", "csv", "xlsx")
SOURCE_KINDS = ("kobo", "odk_central", "file")
AS_REPORTED, EVENT_DATE = "as_reported", "event_date"
OUTSIDE_BASES = (AS_REPORTED, EVENT_DATE)  # [report] outside_basis (contract section 4)


def _closest(name: str, options: tuple[str, ...] | list[str]) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


class _Reader:
    """Typed access to one TOML table, with errors that name the key."""

    def __init__(self, section: str, table: dict[str, Any], base: Path) -> None:
        self.section = section
        self.table = table
        self.base = base

    def key(self, name: str) -> str:
        return f"[{self.section}] {name}"

    def fail(self, name: str, expected: str) -> ConfigError:
        value = self.table.get(name)
        return ConfigError(f"{self.key(name)} must be {expected}, got {value!r}.")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., *, expected: str) -> Any:
        if name not in self.table:
            if default is ...:
                raise ConfigError(f"{self.key(name)} is missing: it must be {expected}.")
            return default
        value = self.table[name]
        # TOML booleans are ints in Python: keep them apart.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(name, expected)
        if not isinstance(value, kind):
            raise self.fail(name, expected)
        return value

    def text(self, name: str, default: Any = ..., *, expected: str = "a string") -> str:
        return self.get(name, str, default, expected=expected)

    def boolean(self, name: str, default: bool) -> bool:
        return self.get(name, bool, default, expected="true or false")

    def integer(self, name: str, default: Any = ..., *, low: int, high: int) -> int:
        expected = f"an integer from {low} to {high}"
        value = self.get(name, int, default, expected=expected)
        if not low <= value <= high:
            raise self.fail(name, expected)
        return value

    def date(self, name: str) -> dt.date:
        expected = "a date written YYYY-MM-DD"
        value = self.get(name, (dt.date, str), expected=expected)
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise self.fail(name, expected) from None

    def text_list(
        self, name: str, default: Any = ..., *, expected: str = "a list of strings"
    ) -> tuple[str, ...]:
        value = self.get(name, list, default, expected=expected)
        if not all(isinstance(item, str) for item in value):
            raise self.fail(name, expected)
        return tuple(value)

    def path(
        self, name: str, default: Any = ..., *, must_exist: bool = False, what: str = "file"
    ) -> Path | None:
        value = self.text(name, default, expected="a path (relative to the config file)")
        if not value:
            return None
        path = (self.base / value).resolve()
        if must_exist and not path.exists():
            raise ConfigError(f"{self.key(name)}: {what} {path} does not exist.")
        return path


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load and validate a config file. Raises ConfigError naming the key or file at fault."""
    config_path = Path(path or DEFAULT_CONFIG_NAME).absolute()
    if not config_path.is_file():
        raise ConfigError(
            f"Config file {config_path} not found (pass -c CONFIG, or run 'kobo-tip init' to write one)."
        )
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {config_path} is not valid TOML: {exc}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"Config file {config_path} is not UTF-8 text.") from None
    return settings_from_dict(raw, config_path)


def settings_from_dict(raw: dict[str, Any], config_path: Path) -> Settings:
    """Validate a parsed config; relative paths resolve against ``config_path``'s folder."""
    base = config_path.parent
    _check_keys(raw)
    for section in _REQUIRED_SECTIONS:
        if section not in raw:
            raise ConfigError(f"Section [{section}] is missing from {config_path}.")

    def reader(section: str) -> _Reader:
        return _Reader(section, raw.get(section, {}), base)

    project = _project(reader("project"))
    form = _form(reader("form"), project)
    ind = _indicator(reader("indicator"))
    if ind.location_level == 2 and not any(loc.level == 2 for loc in form.locations):
        raise ConfigError(
            "[indicator] location_level = 2 needs admin2 rows in the locations file ([form] locations)."
        )
    source = _source(reader("source"), form)
    store = reader("store")
    store_path = store.path("path", "data/kobo-tip.sqlite")
    assert store_path is not None
    store_url = store.text("url", "")
    if store_url and "path" in raw.get("store", {}):
        raise ConfigError("[store] has both path (SQLite) and url (PostgreSQL): keep one.")
    schema = store.text("schema", "kobo_tip")
    if store_url:
        check_store_location(store_url, schema)
    privacy = _privacy(reader("privacy"))
    report = _report(reader("report"), privacy)
    dhis2 = _dhis2(reader("dhis2")) if "dhis2" in raw else None
    targets = _targets(reader("targets")) if "targets" in raw else None
    serve = _serve(reader("serve"))
    return Settings(
        path=config_path,
        project=project,
        form=form,
        indicator=ind,
        source=source,
        store_path=store_path,
        privacy=privacy,
        report=report,
        dhis2=dhis2,
        targets=targets,
        serve=serve,
        store_url=store_url,
        store_schema=schema,
        store_password_env=store.text("password_env", ""),
        raw=raw,
    )


def _check_keys(raw: dict[str, Any]) -> None:
    for section, table in raw.items():
        if section not in _SCHEMA:
            raise ConfigError(f"Unknown section [{section}]{_closest(section, tuple(_SCHEMA))}.")
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table of keys.")
        for key in table:
            if key not in _SCHEMA[section]:
                raise ConfigError(f"Unknown key '{key}' in [{section}]{_closest(key, _SCHEMA[section])}.")


def parse_language(text: str) -> Language:
    """Parse ``English (en)``; the code must be a known ISO 639 language."""
    match = _LANGUAGE_RE.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not written 'Name (code)', for example 'English (en)'")
    code = match["code"]
    primary = code.split("-")[0].lower()
    known = (
        pycountry.languages.get(alpha_2=primary)
        if len(primary) == 2
        else pycountry.languages.get(alpha_3=primary)
    )
    if known is None:
        raise ValueError(f"'{code}' in '{text}' is not an ISO 639 language code")
    return Language(label=f"{match['name'].strip()} ({code})", name=match["name"].strip(), code=code)


def _project(r: _Reader) -> ProjectSettings:
    name = r.text("name", expected="the project's name")
    country = r.text("country", expected="an ISO 3166-1 alpha-2 country code such as 'th'").lower()
    if pycountry.countries.get(alpha_2=country.upper()) is None:
        raise r.fail("country", "an ISO 3166-1 alpha-2 country code such as 'th'")
    start, end = r.date("start_date"), r.date("end_date")
    if end < start:
        raise ConfigError(f"[project] end_date {end} is before start_date {start}.")
    month = r.integer("fiscal_year_start_month", 10, low=1, high=12)
    language_texts = r.text_list("languages", ["English (en)"], expected='a list such as ["English (en)"]')
    if not language_texts:
        raise r.fail("languages", 'a non-empty list such as ["English (en)"]')
    languages = []
    own = r.base / TRANSLATIONS_FOLDER
    for text in language_texts:
        try:
            language = parse_language(text)
        except ValueError as exc:
            raise ConfigError(f"[project] languages: {exc}.") from None
        languages.append(dataclasses.replace(language, folder=own) if own.is_dir() else language)
    if len({lang.code for lang in languages}) != len(languages):
        raise ConfigError("[project] languages lists the same language code twice.")
    report_text = r.text("report_language", language_texts[0])
    report_language = next((lang for lang in languages if lang.label == report_text.strip()), None)
    if report_language is None:
        raise ConfigError(
            f"[project] report_language '{report_text}' must be one of [project] languages "
            f"({', '.join(lang.label for lang in languages)})."
        )
    return ProjectSettings(name, country, start, end, month, tuple(languages), report_language)


def _form(r: _Reader, project: ProjectSettings) -> FormSettings:
    form_id = r.text("form_id", indicator.FORM_ID)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-.]*", form_id):
        raise r.fail("form_id", "a name of letters, digits, '_', '-' or '.', starting with a letter")
    title = r.text("title", "Victims identified or referred")
    roster_path = r.path("roster", must_exist=True, what="roster file")
    if roster_path is None:
        raise r.fail("roster", "the path of the roster CSV (id,name,type,trained_on)")
    roster = load_roster(roster_path)
    locations_path = r.path("locations", "", must_exist=True, what="locations file")
    locations = load_locations(locations_path) if locations_path else default_locations(project.country)
    directory_path = r.path("referral_directory", "", must_exist=True, what="referral directory")
    ethnicities = r.text_list("ethnicities", [])
    for name in ethnicities:
        if not _CHOICE_NAME_RE.match(name):
            raise ConfigError(
                f"[form] ethnicities: '{name}' is not a valid choice name (letters, digits, '_'; no spaces)."
            )
    return FormSettings(
        form_id=form_id,
        title=title,
        roster_path=roster_path,
        roster=roster,
        locations_path=locations_path,
        locations=locations,
        disability=r.boolean("disability", True),
        ethnicities=ethnicities,
        referral_directory_path=directory_path,
        referral_directory=load_referral_directory(directory_path) if directory_path else (),
    )


def _indicator(r: _Reader) -> IndicatorSettings:
    categories = r.text_list("person_categories", list(indicator.CHOICES["person_category"]))
    allowed = indicator.CHOICES["person_category"]
    for name in categories:
        if name not in allowed:
            raise ConfigError(
                f"[indicator] person_categories: '{name}' is not a person category{_closest(name, allowed)}; "
                f"choose from {', '.join(allowed)}."
            )
    if not categories:
        raise r.fail("person_categories", "a non-empty list of person categories")
    bands_raw = r.get(
        "age_bands",
        (list, str),
        list(indicator.AGE_BANDS_DEFAULT),
        expected='a list of lower bounds such as [0, 5, 12, 18, 60], or "ctdc"',
    )
    if isinstance(bands_raw, str):
        if bands_raw not in indicator.AGE_BANDS_PRESETS:
            raise r.fail(
                "age_bands", f"a list of lower bounds or one of {', '.join(indicator.AGE_BANDS_PRESETS)}"
            )
        bands = indicator.AGE_BANDS_PRESETS[bands_raw]
    else:
        ok = (
            bands_raw
            and all(isinstance(b, int) and not isinstance(b, bool) for b in bands_raw)
            and bands_raw[0] == 0
            and all(a < b for a, b in itertools.pairwise(bands_raw))
            and bands_raw[-1] <= 120
        )
        if not ok:
            raise r.fail("age_bands", "increasing whole numbers starting at 0, such as [0, 5, 12, 18, 60]")
        bands = tuple(bands_raw)
    return IndicatorSettings(
        merges_path=r.path("merges", "", must_exist=True, what="merges file"),
        person_categories=categories,
        require_approved=r.boolean("require_approved", False),
        require_event_after_training=r.boolean("require_event_after_training", False),
        age_bands=bands,
        location_level=r.integer("location_level", 1, low=1, high=2),
    )


def _source(r: _Reader, form: FormSettings) -> SourceSettings:
    kind = r.text("kind", "file")
    if kind not in SOURCE_KINDS:
        raise r.fail("kind", f"one of {', '.join(SOURCE_KINDS)}")
    reconcile = r.get("reconcile_hours", (int, float), 24, expected="a number of hours")
    if reconcile < 0:
        raise r.fail("reconcile_hours", "a number of hours, 0 or more")
    project_id = r.get("project_id", int, None, expected="the Central project's number")
    page_size = r.integer("page_size", 1000, low=1, high=1000)
    settings = SourceSettings(
        kind=kind,
        url=r.text("url", "").rstrip("/"),
        asset_uid=r.text("asset_uid", ""),
        token_env=r.text("token_env", "KOBO_TOKEN"),
        reconcile_hours=float(reconcile),
        project_id=project_id,
        form_id=r.text("form_id", "") or form.form_id,
        username_env=r.text("username_env", "ODK_CENTRAL_USERNAME"),
        password_env=r.text("password_env", "ODK_CENTRAL_PASSWORD"),
        path=r.path("path", "", what="source file"),
        page_size=page_size,
    )
    if kind == "file" and settings.path is None:
        raise ConfigError(
            '[source] path is missing: kind = "file" needs the path of a Kobo JSON or CSV export.'
        )
    if "@" in urlsplit(settings.url).netloc:
        variables = "token_env" if kind == "kobo" else "username_env and password_env"
        raise ConfigError(
            "[source] url holds a user name or password: write the server's address alone "
            f"(https://host) and put the credentials in the environment variables named by {variables}."
        )
    if kind in ("kobo", "odk_central") and not settings.url.startswith(("http://", "https://")):
        raise r.fail("url", "the server's address, starting with https://")
    if kind == "odk_central" and project_id is None:
        raise ConfigError(
            '[source] project_id is missing: kind = "odk_central" needs the Central project number.'
        )
    return settings


def _privacy(r: _Reader) -> PrivacySettings:
    secret_env = r.text("secret_env", "KOBO_TIP_SECRET")
    min_cell_raw = r.get(
        "min_cell",
        dict,
        dict(indicator.DEFAULT_MIN_CELL),
        expected="a table such as { donor = 5, public = 10 }",
    )
    min_cell = dict(indicator.DEFAULT_MIN_CELL)
    for audience, k in min_cell_raw.items():
        if audience not in ("donor", "public"):
            raise ConfigError(
                f"[privacy] min_cell: unknown audience '{audience}'{_closest(audience, ('donor', 'public'))}."
            )
        if not isinstance(k, int) or isinstance(k, bool) or not 2 <= k <= 1000:
            raise ConfigError(
                f"[privacy] min_cell.{audience} must be a whole number from 2 to 1000, got {k!r}."
            )
        min_cell[audience] = k
    return PrivacySettings(secret_env=secret_env, min_cell=min_cell)


def _audiences(r: _Reader, name: str, default: list[str]) -> tuple[str, ...]:
    audiences = r.text_list(name, default)
    for audience in audiences:
        if audience not in indicator.AUDIENCES:
            raise ConfigError(
                f"[report] {name}: unknown audience '{audience}'"
                f"{_closest(audience, indicator.AUDIENCES)}; choose from {', '.join(indicator.AUDIENCES)}."
            )
    return audiences


def _report(r: _Reader, privacy: PrivacySettings) -> ReportSettings:
    out_dir = r.path("out_dir", "reports")
    assert out_dir is not None
    audiences = _audiences(r, "audiences", ["internal", "donor"])
    formats = r.text_list("formats", list(REPORT_FORMATS))
    for fmt in formats:
        if fmt not in REPORT_FORMATS:
            raise ConfigError(f"[report] formats: unknown format '{fmt}'{_closest(fmt, REPORT_FORMATS)}.")
    group = r.text("group", "")
    if group:
        try:
            grp.getgrnam(group)
        except KeyError:
            raise r.fail("group", "the name of an existing group of this machine") from None
    shared = _audiences(r, "share_with_group", ["donor", "public"])
    basis = r.text("outside_basis", AS_REPORTED)
    if basis not in OUTSIDE_BASES:
        raise r.fail("outside_basis", f"one of {', '.join(OUTSIDE_BASES)}")
    return ReportSettings(
        out_dir=out_dir,
        audiences=audiences,
        formats=formats,
        group=group,
        share_with_group=shared,
        stale_after_days=r.integer("stale_after_days", 7, low=0, high=3650),
        max_unreadable_percent=_percent(r, "max_unreadable_percent", 5.0),
        outside_basis=basis,
    )


def _percent(r: _Reader, name: str, default: float) -> float:
    expected = "a percentage from 0 to 100"
    value = r.get(name, (int, float), default, expected=expected)
    if isinstance(value, bool) or not 0 <= value <= 100:
        raise r.fail(name, expected)
    return float(value)


def _dhis2(r: _Reader) -> Dhis2Settings:
    def text_table(name: str) -> dict[str, str]:
        table = r.get(name, dict, expected="a table of names to DHIS2 uids")
        if not all(isinstance(v, str) for v in table.values()):
            raise r.fail(name, "a table of names to DHIS2 uids (strings)")
        return dict(table)

    data_elements = text_table("data_elements")
    for variant in data_elements:
        if variant not in indicator.VARIANTS:
            raise ConfigError(
                f"[dhis2] data_elements: unknown indicator '{variant}'"
                f"{_closest(variant, tuple(indicator.VARIANTS))}."
            )
    return Dhis2Settings(
        data_elements=data_elements,
        org_unit=r.text("org_unit", expected="the DHIS2 org unit uid"),
        attribute_option_combo=r.text("attribute_option_combo", ""),
        category_option_combos=text_table("category_option_combos"),
        data_set=r.text("data_set", ""),
        target_attribute_option_combo=r.text("target_attribute_option_combo", ""),
    )


def _targets(r: _Reader) -> TargetSettings:
    path = r.path("path", must_exist=True, what="targets file")
    if path is None:
        raise r.fail(
            "path", "the path of the targets CSV or XLSX file ('kobo-tip targets template' writes one)"
        )
    return TargetSettings(
        path=path,
        sheet=r.text("sheet", ""),
        margin_percent=r.integer("margin_percent", 10, low=0, high=100),
    )


# libpq's connection keywords that carry a password or say where to read one: a URL may give any
# of them in its user part or its query (percent-encoded or not).
_PASSWORD_KEYWORDS = ("password", "passfile", "sslpassword")


def check_store_location(url: str, schema: str) -> None:
    """A PostgreSQL store's ``postgresql://`` URL, without a password (it comes from the environment
    or libpq's own files), and its schema name; anything else is a ConfigError naming the key."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("[store] url must be a postgresql:// URL (a SQLite store is [store] path).")
    given = _password_keywords(url)
    if given:
        raise ConfigError(
            f"[store] url holds a password ({' and '.join(given)}): remove it and name the environment "
            "variable that holds the password in [store] password_env (or use PGPASSWORD or ~/.pgpass); "
            "a password never goes in the file or on the command line."
        )
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ConfigError(
            f"[store] schema {schema!r} must be lower-case letters, digits and '_' (at most 63)."
        )
    if schema.startswith("pg_"):
        raise ConfigError(
            f"[store] schema {schema!r} starts with 'pg_', which PostgreSQL keeps for its own schemas: "
            "choose another name."
        )


def _password_keywords(url: str) -> list[str]:
    """The password keywords ``url`` gives, as libpq itself reads the URL (a user:password@ part is
    its ``password``); an URL libpq cannot read is refused by the connection, with its reason."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(url)
    except Exception:  # psycopg.ProgrammingError: said when connecting, without the URL's secrets
        # Read loosely then: any user:password@ or password keyword in the query still counts.
        parts = urlsplit(url)
        keys = {key.lower() for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
        return [
            k for k in _PASSWORD_KEYWORDS if k in keys or (k == "password" and parts.password is not None)
        ]
    return [keyword for keyword in _PASSWORD_KEYWORDS if given.get(keyword) is not None]


def _seconds(r: _Reader, key: str, default: float) -> float:
    value = r.get(key, (int, float), default, expected="seconds")
    if not 0.1 <= value <= 600:
        raise r.fail(key, "a number of seconds from 0.1 to 600")
    return float(value)


def _serve(r: _Reader) -> ServeSettings:
    default = ServeSettings()
    hook_auth = r.text("hook_auth", default.hook_auth)
    if hook_auth not in HOOK_AUTH:
        raise r.fail("hook_auth", "'basic' (user name and password) or 'header' (a custom header)")
    header = r.text("hook_header", default.hook_header)
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", header) or header.lower() in ("authorization", "host"):
        raise r.fail("hook_header", "an HTTP header name such as X-Kobo-Tip-Token")
    delay = r.get("render_delay_seconds", (int, float), default.render_delay_seconds, expected="seconds")
    if not 0 <= delay <= 600:
        raise r.fail("render_delay_seconds", "a number of seconds from 0 to 600")
    return ServeSettings(
        host=r.text("host", default.host),
        port=r.integer("port", default.port, low=1, high=65535),
        poll_minutes=r.integer("poll_minutes", default.poll_minutes, low=1, high=24 * 60),
        render_delay_seconds=float(delay),
        max_body_kb=r.integer("max_body_kb", default.max_body_kb, low=1, high=64 * 1024),
        queue_limit=r.integer("queue_limit", default.queue_limit, low=1, high=100_000),
        max_connections=r.integer("max_connections", default.max_connections, low=16, high=1_000_000),
        header_timeout_seconds=_seconds(r, "header_timeout_seconds", default.header_timeout_seconds),
        body_timeout_seconds=_seconds(r, "body_timeout_seconds", default.body_timeout_seconds),
        keep_alive_seconds=r.integer("keep_alive_seconds", default.keep_alive_seconds, low=1, high=300),
        hook_auth=hook_auth,
        hook_username_env=r.text("hook_username_env", default.hook_username_env),
        hook_password_env=r.text("hook_password_env", default.hook_password_env),
        hook_header=header,
        hook_header_env=r.text("hook_header_env", default.hook_header_env),
        status_token_env=r.text("status_token_env", default.status_token_env),
    )


# --- roster and locations -----------------------------------------------------------------


def _read_csv(path: Path, columns: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """The rows of a small CSV file saved by a spreadsheet: UTF-8 (with or without BOM) or UTF-16,
    separated by commas, semicolons (Excel in many locales) or tabs, as its header line shows."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror}.") from None
    text = decode_text(data, f"{what} {path}")
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = list(reader)
    header = reader.fieldnames or []
    missing = [c for c in columns if c not in header]
    if missing:
        raise ConfigError(
            f"{what} {path} lacks the column(s) {', '.join(missing)}; its first line must be the header "
            f"{','.join(columns)} (found {first.strip()[:80]!r})."
        )
    return [{k: (v or "").strip() for k, v in row.items() if k} for row in rows]


def decode_text(data: bytes, what: str) -> str:
    """``data`` as text: UTF-8 (a BOM is dropped) or UTF-16 with its BOM; anything else is an
    error that says what the file seems to be and how to save it as UTF-8."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        looks = "UTF-16 without a byte-order mark" if b"\x00" in data[:200] else "Latin-1 or Windows-1252"
        raise ConfigError(
            f"{what} is not UTF-8 text: line {line} holds the byte 0x{data[exc.start]:02X}, as {looks} "
            "files do. Save it again as UTF-8 (Excel: 'CSV UTF-8 (Comma delimited)'; LibreOffice: "
            "character set 'Unicode (UTF-8)')."
        ) from None


ROSTER_COLUMNS = ("id", "name", "type", "trained_on")
ROSTER_ORGANISATION = "organisation"  # optional: the partner organisation (contract section 7)
LOCATION_COLUMNS = ("level", "code", "name", "parent")
REFERRAL_DIRECTORY_COLUMNS = ("id", "name", "services")


def write_roster(roster: Iterable[Stakeholder], path: Path) -> Path:
    """Write a roster as the CSV that ``load_roster`` reads (with ``organisation`` when one is set)."""
    rows = [
        (s.id, s.name, s.type, s.trained_on.isoformat() if s.trained_on else "", s.organisation)
        for s in roster
    ]
    if any(row[-1] for row in rows):
        return _write_csv(path, (*ROSTER_COLUMNS, ROSTER_ORGANISATION), rows)
    return _write_csv(path, ROSTER_COLUMNS, (row[:-1] for row in rows))


def write_locations(locations: Iterable[Location], path: Path) -> Path:
    """Write locations as the CSV that ``load_locations`` reads."""
    return _write_csv(path, LOCATION_COLUMNS, ((x.level, x.code, x.name, x.parent) for x in locations))


def write_referral_directory(directory: Iterable[ReferralOrg], path: Path) -> Path:
    """Write a referral directory as the CSV that ``load_referral_directory`` reads."""
    return _write_csv(
        path, REFERRAL_DIRECTORY_COLUMNS, ((o.id, o.name, " ".join(o.services)) for o in directory)
    )


def _write_csv(path: Path, header: tuple[str, ...], rows: Iterable[tuple[object, ...]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _new_choice_id(value: str, seen: set[str], where: str, not_listed: str) -> str:
    """A roster's or directory's id, checked as a choice name of the form and added to ``seen``;
    ``not_listed`` says whom the reserved ``not_listed`` choice stands for."""
    if not _CHOICE_NAME_RE.match(value):
        raise ConfigError(f"{where}: id '{value}' must be letters, digits, '_', '-' or '.', without spaces.")
    if value == indicator.NOT_LISTED:
        raise ConfigError(f"{where}: id '{value}' is reserved for {not_listed}.")
    if value in seen:
        raise ConfigError(f"{where}: duplicate id '{value}'.")
    seen.add(value)
    return value


def load_roster(path: Path) -> tuple[Stakeholder, ...]:
    """Read and check the roster CSV: ``id,name,type,trained_on`` and optionally ``organisation``."""
    rows = _read_csv(path, ROSTER_COLUMNS, "Roster")
    types = indicator.CHOICES["stakeholder_type"]
    seen: set[str] = set()
    roster = []
    for line, row in enumerate(rows, start=2):
        where = f"Roster {path} line {line}"
        sid = _new_choice_id(row["id"], seen, where, "stakeholders not on the roster")
        if row["type"] not in types:
            raise ConfigError(
                f"{where}: type '{row['type']}' is not a stakeholder type{_closest(row['type'], types)}; "
                f"choose from {', '.join(types)}."
            )
        if not row["name"]:
            raise ConfigError(f"{where}: name is empty.")
        trained_on = None
        if row["trained_on"]:
            try:
                trained_on = dt.date.fromisoformat(row["trained_on"])
            except ValueError:
                raise ConfigError(
                    f"{where}: trained_on '{row['trained_on']}' is not a date written YYYY-MM-DD."
                ) from None
        organisation = " ".join(row.get(ROSTER_ORGANISATION, "").split())
        roster.append(Stakeholder(sid, row["name"], row["type"], trained_on, organisation))
    if not roster:
        raise ConfigError(f"Roster {path} has no stakeholders.")
    return tuple(roster)


def load_referral_directory(path: Path) -> tuple[ReferralOrg, ...]:
    """Read and check the referral directory CSV: ``id,name,services`` (services: names of the
    ``service`` choice list separated by spaces, or empty)."""
    rows = _read_csv(path, REFERRAL_DIRECTORY_COLUMNS, "Referral directory")
    known = indicator.CHOICES["service"]
    seen: set[str] = set()
    directory = []
    for line, row in enumerate(rows, start=2):
        where = f"Referral directory {path} line {line}"
        oid = _new_choice_id(row["id"], seen, where, "organisations not in the directory")
        if not row["name"]:
            raise ConfigError(f"{where}: name is empty.")
        services = tuple(row["services"].split())
        for service in services:
            if service not in known:
                raise ConfigError(
                    f"{where}: service '{service}' is not a service{_closest(service, known)}; "
                    f"choose from {', '.join(known)}, separated by spaces."
                )
        directory.append(ReferralOrg(oid, row["name"], services))
    if not directory:
        raise ConfigError(f"Referral directory {path} has no organisations: add some, or leave the key out.")
    return tuple(directory)


def load_locations(path: Path) -> tuple[Location, ...]:
    """Read and check the locations CSV: ``level,code,name,parent``."""
    rows = _read_csv(path, LOCATION_COLUMNS, "Locations file")
    locations: list[Location] = []
    codes: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        where = f"Locations file {path} line {line}"
        if row["level"] not in ("1", "2"):
            raise ConfigError(f"{where}: level must be 1 (admin1) or 2 (admin2), got '{row['level']}'.")
        level = int(row["level"])
        code = row["code"]
        if not _CHOICE_NAME_RE.match(code):
            raise ConfigError(
                f"{where}: code '{code}' must be letters, digits, '_', '-' or '.', without spaces."
            )
        if code in codes:
            raise ConfigError(f"{where}: duplicate code '{code}'.")
        if not row["name"]:
            raise ConfigError(f"{where}: name is empty.")
        parent = row["parent"]
        if level == 1:
            parent = parent.lower()
            if pycountry.countries.get(alpha_2=parent.upper()) is None:
                raise ConfigError(
                    f"{where}: an admin1 row's parent must be an ISO alpha-2 country code, "
                    f"got '{row['parent']}'."
                )
        elif codes.get(parent) != 1:
            raise ConfigError(
                f"{where}: an admin2 row's parent must be the code of an admin1 row above it, got '{parent}'."
            )
        codes[code] = level
        locations.append(Location(level, code, row["name"], parent))
    return tuple(locations)


def default_locations(country: str) -> tuple[Location, ...]:
    """Admin1 entries from pycountry's ISO 3166-2 subdivisions (top level) of ``country``."""
    subdivisions = pycountry.subdivisions.get(country_code=country.upper()) or []
    top = sorted((s for s in subdivisions if s.parent_code is None), key=lambda s: s.code)
    return tuple(Location(1, s.code, s.name, country.lower()) for s in top)
