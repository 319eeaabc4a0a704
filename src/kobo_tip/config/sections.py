"""Each section of the config checked and turned into its settings, with errors naming the key."""

from __future__ import annotations

import dataclasses
import grp
import itertools
import re
from urllib.parse import parse_qsl, urlsplit

import pycountry

from kobo_tip import indicator
from kobo_tip.config.files import (
    CHOICE_NAME_RE,
    default_locations,
    load_locations,
    load_referral_directory,
    load_roster,
)
from kobo_tip.config.reader import Reader, Section, closest
from kobo_tip.config.settings import (
    HOOK_AUTH,
    OUTSIDE_BASES,
    REPORT_FORMATS,
    SOURCE_KINDS,
    Dhis2Settings,
    FormSettings,
    IndicatorSettings,
    Language,
    PrivacySettings,
    ProjectSettings,
    ReportSettings,
    ServeSettings,
    SourceSettings,
    StoreSettings,
    TargetSettings,
)
from kobo_tip.errors import ConfigError

_LANGUAGE_RE = re.compile(r"^(?P<name>[^()]+?)\s*\((?P<code>[A-Za-z]{2,3}(?:-[A-Za-z0-9]+)*)\)$")
TRANSLATIONS_FOLDER = "translations"  # beside the config: the project's own form translations


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


def _project(r: Reader) -> ProjectSettings:
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


def _form(r: Reader, project: ProjectSettings) -> FormSettings:
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
        if not CHOICE_NAME_RE.match(name):
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


def _indicator(r: Reader) -> IndicatorSettings:
    categories = r.text_list("person_categories", list(indicator.CHOICES["person_category"]))
    allowed = indicator.CHOICES["person_category"]
    for name in categories:
        if name not in allowed:
            raise ConfigError(
                f"[indicator] person_categories: '{name}' is not a person category{closest(name, allowed)}; "
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


def _source(r: Reader, form: FormSettings) -> SourceSettings:
    kind = r.text("kind")
    if kind not in SOURCE_KINDS:
        raise r.fail("kind", f"one of {', '.join(SOURCE_KINDS)}")
    reconcile = r.get("reconcile_hours", (int, float), expected="a number of hours")
    if reconcile < 0:
        raise r.fail("reconcile_hours", "a number of hours, 0 or more")
    project_id = r.get("project_id", int, expected="the Central project's number")
    page_size = r.integer("page_size", low=1, high=1000)
    settings = SourceSettings(
        kind=kind,
        url=r.text("url").rstrip("/"),
        asset_uid=r.text("asset_uid"),
        token_env=r.text("token_env"),
        reconcile_hours=float(reconcile),
        project_id=project_id,
        form_id=r.text("form_id") or form.form_id,
        username_env=r.text("username_env"),
        password_env=r.text("password_env"),
        path=r.path("path", what="source file"),
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


def _privacy(r: Reader) -> PrivacySettings:
    secret_env = r.text("secret_env")
    min_cell_raw = r.get("min_cell", dict, expected="a table such as { donor = 5, public = 10 }")
    min_cell = dict(r.defaults["min_cell"])
    for audience, k in min_cell_raw.items():
        if audience not in ("donor", "public"):
            raise ConfigError(
                f"[privacy] min_cell: unknown audience '{audience}'{closest(audience, ('donor', 'public'))}."
            )
        if not isinstance(k, int) or isinstance(k, bool) or not 2 <= k <= 1000:
            raise ConfigError(
                f"[privacy] min_cell.{audience} must be a whole number from 2 to 1000, got {k!r}."
            )
        min_cell[audience] = k
    return PrivacySettings(secret_env=secret_env, min_cell=min_cell)


def _audiences(r: Reader, name: str) -> tuple[str, ...]:
    audiences = r.text_list(name)
    for audience in audiences:
        if audience not in indicator.AUDIENCES:
            raise ConfigError(
                f"[report] {name}: unknown audience '{audience}'"
                f"{closest(audience, indicator.AUDIENCES)}; choose from {', '.join(indicator.AUDIENCES)}."
            )
    return audiences


def _report(r: Reader, privacy: PrivacySettings) -> ReportSettings:
    out_dir = r.path("out_dir")
    assert out_dir is not None
    audiences = _audiences(r, "audiences")
    formats = r.text_list("formats")
    for fmt in formats:
        if fmt not in REPORT_FORMATS:
            raise ConfigError(f"[report] formats: unknown format '{fmt}'{closest(fmt, REPORT_FORMATS)}.")
    group = r.text("group")
    if group:
        try:
            grp.getgrnam(group)
        except KeyError:
            raise r.fail("group", "the name of an existing group of this machine") from None
    shared = _audiences(r, "share_with_group")
    basis = r.text("outside_basis")
    if basis not in OUTSIDE_BASES:
        raise r.fail("outside_basis", f"one of {', '.join(OUTSIDE_BASES)}")
    return ReportSettings(
        out_dir=out_dir,
        audiences=audiences,
        formats=formats,
        group=group,
        share_with_group=shared,
        stale_after_days=r.integer("stale_after_days", low=0, high=3650),
        max_unreadable_percent=_percent(r, "max_unreadable_percent"),
        outside_basis=basis,
    )


def _percent(r: Reader, name: str) -> float:
    expected = "a percentage from 0 to 100"
    value = r.get(name, (int, float), expected=expected)
    if isinstance(value, bool) or not 0 <= value <= 100:
        raise r.fail(name, expected)
    return float(value)


def _dhis2(r: Reader) -> Dhis2Settings:
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
                f"{closest(variant, tuple(indicator.VARIANTS))}."
            )
    return Dhis2Settings(
        data_elements=data_elements,
        org_unit=r.text("org_unit", expected="the DHIS2 org unit uid"),
        attribute_option_combo=r.text("attribute_option_combo"),
        category_option_combos=text_table("category_option_combos"),
        data_set=r.text("data_set"),
        target_attribute_option_combo=r.text("target_attribute_option_combo"),
    )


def _targets(r: Reader) -> TargetSettings:
    path = r.path("path", must_exist=True, what="targets file")
    if path is None:
        raise r.fail(
            "path", "the path of the targets CSV or XLSX file ('kobo-tip targets template' writes one)"
        )
    return TargetSettings(
        path=path,
        sheet=r.text("sheet"),
        margin_percent=r.integer("margin_percent", low=0, high=100),
    )


def _store(r: Reader) -> StoreSettings:
    path = r.path("path")
    assert path is not None
    url = r.text("url")
    if url and "path" in r.table:
        raise ConfigError("[store] has both path (SQLite) and url (PostgreSQL): keep one.")
    schema = r.text("schema")
    if url:
        check_store_location(url, schema)
    return StoreSettings(path=path, url=url, schema=schema, password_env=r.text("password_env"))


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
    from psycopg.conninfo import conninfo_to_dict  # psycopg only for who connects to PostgreSQL  # noqa: PLC0415

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


def _seconds(r: Reader, key: str) -> float:
    value = r.get(key, (int, float), expected="seconds")
    if not 0.1 <= value <= 600:
        raise r.fail(key, "a number of seconds from 0.1 to 600")
    return float(value)


def _serve(r: Reader) -> ServeSettings:
    hook_auth = r.text("hook_auth")
    if hook_auth not in HOOK_AUTH:
        raise r.fail("hook_auth", "'basic' (user name and password) or 'header' (a custom header)")
    header = r.text("hook_header")
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", header) or header.lower() in ("authorization", "host"):
        raise r.fail("hook_header", "an HTTP header name such as X-Kobo-Tip-Token")
    delay = r.get("render_delay_seconds", (int, float), expected="seconds")
    if not 0 <= delay <= 600:
        raise r.fail("render_delay_seconds", "a number of seconds from 0 to 600")
    return ServeSettings(
        host=r.text("host"),
        port=r.integer("port", low=1, high=65535),
        poll_minutes=r.integer("poll_minutes", low=1, high=24 * 60),
        render_delay_seconds=float(delay),
        max_body_kb=r.integer("max_body_kb", low=1, high=64 * 1024),
        queue_limit=r.integer("queue_limit", low=1, high=100_000),
        max_connections=r.integer("max_connections", low=16, high=1_000_000),
        header_timeout_seconds=_seconds(r, "header_timeout_seconds"),
        body_timeout_seconds=_seconds(r, "body_timeout_seconds"),
        keep_alive_seconds=r.integer("keep_alive_seconds", low=1, high=300),
        hook_auth=hook_auth,
        hook_username_env=r.text("hook_username_env"),
        hook_password_env=r.text("hook_password_env"),
        hook_header=header,
        hook_header_env=r.text("hook_header_env"),
        status_token_env=r.text("status_token_env"),
    )


# The keys of each section: one table per section, which its reader reads from and which a config's
# keys are checked against. A section read field by field into its dataclass has that dataclass's
# fields as keys and their defaults; form and indicator name files whose contents they load.
SECTIONS: dict[str, Section] = {
    "project": Section.of(ProjectSettings),
    "form": Section(
        ("form_id", "title", "roster", "locations", "disability", "ethnicities", "referral_directory")
    ),
    "indicator": Section(
        (
            "merges",
            "person_categories",
            "require_approved",
            "require_event_after_training",
            "age_bands",
            "location_level",
        )
    ),
    "source": Section.of(SourceSettings),
    "store": Section.of(StoreSettings),
    "privacy": Section.of(PrivacySettings),
    "report": Section.of(ReportSettings),
    "dhis2": Section.of(Dhis2Settings),
    "targets": Section.of(TargetSettings),
    "serve": Section.of(ServeSettings),
}
