"""The typed settings a config file becomes: one frozen dataclass per section."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from kobo_tip import indicator
from kobo_tip.config.secret import MIN_SECRET_CHARS, read_secret, strong_secret
from kobo_tip.errors import WeakSecretError

DEFAULT_CONFIG_NAME = "kobo-tip.toml"
# The environment variables a source's credentials are read from unless the config names others;
# the sources' own defaults are these too.
KOBO_TOKEN_ENV = "KOBO_TOKEN"
CENTRAL_USERNAME_ENV, CENTRAL_PASSWORD_ENV = "ODK_CENTRAL_USERNAME", "ODK_CENTRAL_PASSWORD"
REPORT_FORMATS = ("html", "md", "csv", "xlsx")
SOURCE_KINDS = ("kobo", "odk_central", "file")
AS_REPORTED, EVENT_DATE = "as_reported", "event_date"
OUTSIDE_BASES = (AS_REPORTED, EVENT_DATE)  # [report] outside_basis (contract section 4)


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
    name: str  # English, or the only name the file gives
    parent: str
    # (language code, name) pairs from a COD-AB table's ADMn_<language> columns (kobo_tip.cod_ab).
    names: tuple[tuple[str, str], ...] = ()

    def name_in(self, language: str) -> str:
        """The name in ``language``, or ``name`` when the file gives none in it."""
        return dict(self.names).get(language) or self.name


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
    # The defaults of a section's dataclass are those of its keys: ``Reader`` takes them from here.
    kind: str = "file"  # kobo | odk_central | file
    url: str = ""
    asset_uid: str = ""
    token_env: str = KOBO_TOKEN_ENV
    reconcile_hours: float = 24.0
    project_id: int | None = None
    form_id: str = ""
    username_env: str = CENTRAL_USERNAME_ENV
    password_env: str = CENTRAL_PASSWORD_ENV
    path: Path | None = None
    page_size: int = 1000


@dataclass(frozen=True)
class PrivacySettings:
    secret_env: str = "KOBO_TIP_SECRET"
    min_cell: dict[str, int] = field(default_factory=lambda: dict(indicator.DEFAULT_MIN_CELL))


@dataclass(frozen=True)
class ReportSettings:
    out_dir: Path = Path("reports")  # relative to the config's folder, until read
    audiences: tuple[str, ...] = ("internal", "donor")
    formats: tuple[str, ...] = REPORT_FORMATS
    group: str = ""  # a group that may read the reports of share_with_group (empty: owner only)
    share_with_group: tuple[str, ...] = ("donor", "public")
    stale_after_days: int = 7  # a report says how old its data are when the last sync is older
    # Above this share of submissions unreadable for the counting, outside reports are held back
    # until an officer has looked (``kobo_tip.readability``).
    max_unreadable_percent: float = 5.0
    # How outside audiences count (contract section 4): "as_reported" freezes a released quarter,
    # "event_date" counts every person in the quarter of their index event, as internal does.
    outside_basis: str = AS_REPORTED


@dataclass(frozen=True)
class Dhis2Settings:
    data_elements: dict[str, str]
    org_unit: str
    category_option_combos: dict[str, str]
    attribute_option_combo: str = ""
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
            password = strong_secret(self.hook_password_env, "the password Kobo's REST Service sends")
            return HookCredentials("basic", username=username, password=password)
        what = f"the {self.hook_header} header Kobo's REST Service sends"
        token = strong_secret(self.hook_header_env, what)
        return HookCredentials("header", header=self.hook_header, token=token)

    def status_token(self) -> str:
        return strong_secret(self.status_token_env, "the bearer token of the status endpoint")


@dataclass(frozen=True)
class StoreSettings:
    """``[store]``: the SQLite file ``path``, unless ``url`` names a PostgreSQL database."""

    path: Path = Path("data/kobo-tip.sqlite")  # the SQLite file, relative to the config's folder until read
    url: str = ""  # postgresql://user@host/db: the shared back end, with the project in schema
    schema: str = "kobo_tip"
    password_env: str = ""  # else libpq's own means (PGPASSWORD, ~/.pgpass)


@dataclass(frozen=True)
class Settings:
    path: Path  # the config file
    project: ProjectSettings
    form: FormSettings
    indicator: IndicatorSettings
    source: SourceSettings
    store: StoreSettings
    privacy: PrivacySettings
    report: ReportSettings
    dhis2: Dhis2Settings | None = None
    targets: TargetSettings | None = None
    serve: ServeSettings = field(default_factory=ServeSettings)

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
