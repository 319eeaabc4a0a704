"""Command line: parses, calls the library, prints. No logic of its own."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kobo_tip import __version__
from kobo_tip.config import DEFAULT_CONFIG_NAME, Settings, load_settings
from kobo_tip.errors import ConfigError, KoboTipError, UsageError

if TYPE_CHECKING:
    # Only for the annotation: the form builder (pyxform, openpyxl) is imported when a command needs it.
    from kobo_tip.form.build import FormBuild

log = logging.getLogger("kobo_tip")
urllib3_log = logging.getLogger("urllib3")


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (exit 2, one sentence) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help').")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date written YYYY-MM-DD") from None


_DESCRIPTIONS = {
    "serve": "Run until stopped (SIGTERM): receive the submissions KoboToolbox pushes to "
    "/hooks/kobo/<asset_uid> (its REST Service), sync the source every [serve] poll_minutes and "
    "render the internal report a moment after each change; outside reports when a quarter ends. "
    "Put it behind a TLS proxy; see the README.",
    "init": "Write a starter kobo-tip.toml, a stakeholder roster and a locations file for a country, "
    "then edit them for the project.",
    "form": "Build the field form (XLSForm and XForm, validated) or deploy it to the configured server.",
    "form build": "Write forms/<form_id>.xlsx and .xml from the config, roster and locations, and "
    "validate them with pyxform and ODK Validate.",
    "form deploy": "Build the form, then create or replace it on the configured KoboToolbox or ODK "
    "Central server and deploy the new version.",
    "sync": "Pull new and changed submissions from the configured source into the local store "
    "(reconciling edits, review statuses and deletions when due), then render the reports.",
    "report": "Count the stored submissions and write each audience's report folder (HTML, Markdown, "
    "CSV, XLSX, DHIS2), outside audiences with small numbers hidden.",
    "status": "Show what the local store holds and the last syncs; --assets lists the server's forms.",
    "store": "Manage the local store.",
    "store migrate": "Upgrade the local store to the schema version of this kobo-tip (a copy is not "
    "kept: back the file up first if you want one).",
    "store copy": "Copy the configured store, whole, into an empty one of either back end: a "
    "postgresql:// URL (with --schema) or a SQLite file path; each table's rows are counted and hashed "
    "on both sides. Then point [store] at the copy.",
    "targets": "Targets of the M&E plan, which the reports compare with the actuals ([targets] path).",
    "targets template": "Write a targets file with a row per indicator and project period (quarters, "
    "fiscal years, LOP) for the total, to fill in and name in [targets] path.",
    "hook": "The KoboToolbox REST Service that pushes each new submission to kobo-tip serve.",
    "hook register": "Create or update the REST Service of the configured KoboToolbox asset that pushes "
    "each new submission to URL/hooks/kobo/<asset uid>, with the credentials [serve] hook_auth names.",
    "demo": "Run the whole pipeline on generated data in a new folder: no server and no secret needed.",
    "translations": "Hand the form and report texts of a language to a translator, and bring them back.",
    "translations export": "Write every form and report text of a language to an XLSX sheet or a gettext "
    ".po file: key, English source, where it appears, the current translation (empty when none) and "
    "what must stay unchanged.",
    "translations import": "Check a translated XLSX or .po file (every text translated, placeholders, "
    "numbers and name-code examples kept, lengths a phone can show) and write it as "
    "translations/<code>.toml beside the config, which overrides the texts kobo-tip ships.",
}


# The whole command tree in one place, one statement per option, as argparse reads best.
def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915
    parser = _Parser(
        prog="kobo-tip",
        description="Count victims of trafficking, exploitation and GBV identified or referred by "
        "trained stakeholders, from KoboToolbox or ODK Central, and report them safely.",
    )
    parser.add_argument("--version", action="version", version=f"kobo-tip {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    # --debug is accepted before or after the command.
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("description", _DESCRIPTIONS.get(name, kwargs.get("help")))
        return commands.add_parser(name, parents=[common], **kwargs)

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "-c",
            "--config",
            default=DEFAULT_CONFIG_NAME,
            help=f"config file (default: {DEFAULT_CONFIG_NAME} in the current folder)",
        )
        return sub

    init = add("init", help="write a starter config, roster and locations files")
    init.add_argument("dir", nargs="?", default=".", help="folder to write into (default: here)")
    init.add_argument("--country", default="th", help="ISO alpha-2 country code (default: th)")
    init.add_argument(
        "--locations",
        type=Path,
        help="the country's COD-AB table from HDX (CSV or XLSX), or a level,code,name,parent CSV",
    )

    form = add("form", help="build or deploy the field form")
    form_commands = form.add_subparsers(dest="form_command", metavar="ACTION", parser_class=_Parser)

    def form_add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("description", _DESCRIPTIONS.get(f"form {name}", kwargs.get("help")))
        return form_commands.add_parser(name, parents=[common], **kwargs)

    build = with_config(form_add("build", help="write forms/<form_id>.xlsx and .xml"))
    build.add_argument("--ignore-warnings", action="store_true", help="do not fail on pyxform warnings")
    deploy = with_config(form_add("deploy", help="create or replace the form on the server and deploy it"))
    deploy.add_argument("--save-uid", action="store_true", help="write the asset uid into the config")
    deploy.add_argument("--ignore-warnings", action="store_true", help="do not fail on form warnings")

    sync = with_config(add("sync", help="pull submissions, then render the reports"))
    sync.add_argument("--full", action="store_true", help="reconcile edits, statuses and deletions now")
    sync.add_argument("--no-report", action="store_true", help="skip rendering the reports")

    report = with_config(add("report", help="render reports from the store"))
    report.add_argument(
        "--audience",
        choices=("internal", "donor", "public"),
        help="render one audience only: internal (the M&E team: every number, the data-quality and "
        "revision lists), donor (small numbers hidden below [privacy] min_cell.donor), public "
        "(hidden below min_cell.public); default: [report] audiences",
    )
    report.add_argument("--as-of", type=_date, help="run date YYYY-MM-DD (default: today)")
    report.add_argument(
        "--accept-unreadable",
        action="store_true",
        help="write the donor and public reports (or the --partner report) although more of the store "
        "(of the partner's own submissions) than [report] max_unreadable_percent cannot be read for "
        "counting (recorded: holds until more rows are unreadable)",
    )
    report.add_argument(
        "--partner",
        metavar="ORG",
        help="write the report of one partner organisation of the roster (its stakeholders' records "
        "only, protected as the donor report) into <out_dir>/partner-<organisation>/",
    )
    report.add_argument(
        "--programme",
        action="store_true",
        help="-c names a programme config: count each person once across its projects (outside audiences: "
        "released with every project's, audited together)",
    )

    status = with_config(add("status", help="what the store holds, last syncs"))
    status.add_argument("--assets", action="store_true", help="list the server's survey assets")

    def actions(name: str, help: str) -> argparse._SubParsersAction[_Parser]:
        """A command whose actions (``kobo-tip NAME ACTION``) each take ``-c``."""
        return add(name, help=help).add_subparsers(
            dest=f"{name}_command", metavar="ACTION", parser_class=_Parser
        )

    def action(
        group: argparse._SubParsersAction[_Parser], command: str, name: str, help: str
    ) -> argparse.ArgumentParser:
        key = f"{command} {name}"
        return with_config(
            group.add_parser(name, parents=[common], help=help, description=_DESCRIPTIONS[key])
        )

    store = actions("store", "the local store's schema")
    action(store, "store", "migrate", "upgrade the store to this kobo-tip's schema version")
    copy = action(store, "store", "copy", "copy the store into an empty one (SQLite or PostgreSQL)")
    copy.add_argument(
        "--to", required=True, help="postgresql://user@host/db, or the path of a new SQLite file"
    )
    copy.add_argument("--schema", help="the PostgreSQL schema to copy into (default: [store] schema)")

    targets = actions("targets", "targets of the M&E plan: a template to fill in")
    template = action(targets, "targets", "template", "write a targets file to fill in")
    template.add_argument(
        "--out",
        default="forms/targets.xlsx",
        help="file to write, .xlsx or .csv, relative to the config (default: forms/targets.xlsx)",
    )

    serve = with_config(add("serve", help="receive Kobo's pushes, poll the source, keep the reports current"))
    serve.add_argument("--host", help="address to listen on (default: [serve] host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: [serve] port, 8080)")

    hook = actions("hook", "the Kobo REST Service that pushes submissions to kobo-tip serve")
    register = action(hook, "hook", "register", "create or update the REST Service on the Kobo asset")
    register.add_argument(
        "--url",
        required=True,
        help="the public https:// base URL where kobo-tip serve is reachable (behind a TLS proxy)",
    )

    translations = actions("translations", "export a language's texts for a translator, import them back")
    export = action(translations, "translations", "export", "write a language's texts to XLSX or .po")
    export.add_argument("--language", required=True, help='the language, such as "Khmer (km)"')
    export.add_argument(
        "--format", choices=("xlsx", "po"), help="xlsx or po (default: from --out's suffix, else xlsx)"
    )
    export.add_argument(
        "-o",
        "--out",
        type=Path,
        help="file to write (default: translations/<code>.<format> beside the config)",
    )
    imported = action(translations, "translations", "import", "check a translated file and use it")
    imported.add_argument("file", type=Path, help="the translated .xlsx or .po file")
    imported.add_argument(
        "--reviewed", action="store_true", help="mark the language as reviewed by the project"
    )

    demo = add("demo", help="the whole pipeline on generated data, no server needed")
    demo.add_argument("dir", nargs="?", default="kobo-tip-demo", help="folder for the demo project")
    return parser


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of the record (tests swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


@contextlib.contextmanager
def _logging_to_stderr(debug: bool) -> Iterator[None]:
    """Plain log lines on stderr for the duration of one command, then the logger as it was."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = (log.level, log.propagate, urllib3_log.level)
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False
    # kobo_tip.http says each retry without the query's secrets; urllib3's own line quotes the URL.
    urllib3_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]
        urllib3_log.setLevel(saved[2])


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _cmd_init(args: argparse.Namespace) -> None:
    from kobo_tip.init_project import locations_note, translations_note, write_starter

    for path in write_starter(Path(args.dir), country=args.country, locations_file=args.locations):
        print(f"wrote {path}")
    print(translations_note(args.country.strip().lower()))
    print(locations_note(args.country.strip().lower(), given=args.locations is not None))
    print(
        "Next: edit kobo-tip.toml, forms/stakeholders.csv and forms/referral_directory.csv, "
        "then run 'kobo-tip form build'."
    )


def _build_form(settings: Settings, ignore_warnings: bool) -> FormBuild:
    from kobo_tip.form import build_form

    build = build_form(settings, ignore_warnings=ignore_warnings)
    for warning in build.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    state = "validated with ODK Validate" if build.validated else "NOT validated (see the warning above)"
    print(f"wrote {build.files.xlsx_path} and {build.files.xml_path}, version {build.files.version}, {state}")
    return build


def _cmd_form(args: argparse.Namespace) -> None:
    if args.form_command is None:
        raise UsageError("'kobo-tip form' needs an action: build or deploy.")
    settings = _settings(args)
    if args.form_command == "build":
        _build_form(settings, args.ignore_warnings)
        return
    from kobo_tip.sources import open_source

    source = open_source(settings)
    source.ready_to_deploy()  # before the form is built and its version moves on
    build = _build_form(settings, args.ignore_warnings)
    result = source.deploy(build.files, ignore_warnings=args.ignore_warnings)
    for message in result.messages:
        print(message)
    print(f"deployed {result.uid} version {result.version}: {result.url}")
    if result.enketo_url:
        print(f"web form: {result.enketo_url}")
    if args.save_uid:
        from kobo_tip.config_file import save_asset_uid

        save_asset_uid(settings.path, result.uid)
        print(f"saved asset uid {result.uid} in {settings.path}")


def _render(
    settings: Settings,
    audiences: Sequence[str] | None,
    as_of: dt.date | None,
    *,
    refuse_unreadable: bool = False,
    accept_unreadable: bool = False,
) -> None:
    from kobo_tip.readability import UnreadableHeld
    from kobo_tip.report import render_reports

    try:
        written = render_reports(
            settings,
            audiences=audiences,
            as_of=as_of,
            refuse_unreadable=refuse_unreadable,
            accept_unreadable=accept_unreadable,
        )
    except UnreadableHeld as held:
        for path in held.written:
            print(f"wrote {path}")
        raise
    for path in written:
        print(f"wrote {path}")


def _cmd_sync(args: argparse.Namespace) -> None:
    from kobo_tip.sync import few_collections, run_sync

    settings = _settings(args)
    with few_collections():  # process-wide collector settings: this command runs nothing else meanwhile
        summary = run_sync(settings, full=args.full)
    print(summary.line())
    if not args.no_report:
        _render(settings, None, None)  # says when too much of the store cannot be read
        return
    from kobo_tip.readability import check_store, hold_reason
    from kobo_tip.store import open_store

    with open_store(settings, create=False) as store:
        held = hold_reason(store, settings, check_store(store, settings), accept=False)
    if held is not None:
        log.warning("%s", held)


def _cmd_report(args: argparse.Namespace) -> None:
    if args.programme:
        from kobo_tip.programme import load_programme, render_programme

        programme = load_programme(args.config)
        audiences = [args.audience] if args.audience else ["internal"]
        for path in render_programme(programme, audiences, args.as_of):
            print(f"wrote {path}")
        return
    settings = _settings(args)
    if args.partner is not None:
        from kobo_tip.report.partner import render_partner_report

        written = render_partner_report(
            settings, args.partner, as_of=args.as_of, accept_unreadable=args.accept_unreadable
        )
        for path in written:
            print(f"wrote {path}")
        return
    _render(
        settings,
        [args.audience] if args.audience else None,
        args.as_of,
        refuse_unreadable=True,
        accept_unreadable=args.accept_unreadable,
    )


def _cmd_status(args: argparse.Namespace) -> None:
    from kobo_tip.status import describe_status

    settings = _settings(args)
    print(describe_status(settings, assets=args.assets))


def _cmd_store(args: argparse.Namespace) -> None:
    if args.store_command is None:
        raise UsageError("'kobo-tip store' needs an action: migrate or copy.")
    from kobo_tip.store import open_store

    settings = _settings(args)
    if args.store_command == "copy":
        _copy_store(settings, args.to, args.schema or "")
        return
    # A PostgreSQL schema is made here by its owner, before the roles that sync are granted it.
    with open_store(settings, create=bool(settings.store.url), migrate=True) as store:
        print(f"{store.path} is at schema version {store.schema_version()}")


def _copy_store(settings: Settings, to: str, schema: str) -> None:
    from kobo_tip.store import open_location, open_store
    from kobo_tip.store.copy import copy_store

    if not to.startswith(("postgresql://", "postgres://")) and Path(to).exists():
        raise UsageError(f"{to} exists: copy into a new SQLite file.")
    target = open_location(to, settings, schema=schema)
    with open_store(settings, create=False) as source, target, source.lock_for_sync(), target.lock_for_sync():
        found = copy_store(source, target)
    tables = ", ".join(f"{check.table} {check.rows}" for check in found)
    print(f"copied {source.path} into {target.path}: {tables} rows; counts and SHA-256 agree on both sides")


def _cmd_targets(args: argparse.Namespace) -> None:
    if args.targets_command is None:
        raise UsageError("'kobo-tip targets' needs an action: template.")
    from kobo_tip.targets import write_template

    settings = _settings(args)
    path = write_template(settings.path.parent / args.out, settings)
    print(f'wrote {path}: fill in the target column, then set [targets] path = "{args.out}".')


def _cmd_serve(args: argparse.Namespace) -> None:
    from kobo_tip.serve import serve

    serve(_settings(args), host=args.host, port=args.port)


def _cmd_hook(args: argparse.Namespace) -> None:
    if args.hook_command is None:
        raise UsageError("'kobo-tip hook' needs an action: register.")
    settings = _settings(args)
    if settings.source.kind != "kobo":
        raise ConfigError(
            f"'kobo-tip hook register' needs a KoboToolbox source, and [source] kind is "
            f"'{settings.source.kind}': only KoboToolbox has REST Services that push submissions."
        )
    from kobo_tip.sources.kobo import KoboSource

    source = KoboSource.from_settings(settings)
    endpoint = source.hook_endpoint(args.url)  # before any secret is read or anything sent
    credentials = settings.serve.credentials()
    hook, created = source.register_hook(endpoint, credentials)
    serve = settings.serve
    if credentials.kind == "basic":
        auth = f"basic auth from {serve.hook_username_env} and {serve.hook_password_env}"
    else:
        auth = f"header {credentials.header} from {serve.hook_header_env}"
    print(
        f"{'created' if created else 'updated'} REST Service '{hook.name}' ({hook.uid}) of asset "
        f"{source.asset_uid}: {endpoint}, {auth}"
    )


def _cmd_translations(args: argparse.Namespace) -> None:
    from kobo_tip.translation import export_translation, import_translation

    if args.translations_command is None:
        raise UsageError("'kobo-tip translations' needs an action: export or import.")
    settings = _settings(args)
    if args.translations_command == "export":
        exported = export_translation(settings, args.language, fmt=args.format, out=args.out)
        print(f"wrote {exported.path}: {exported.texts} texts, {exported.untranslated} without translation")
        return
    done = import_translation(settings, args.file, reviewed=args.reviewed)
    state = ", marked reviewed" if done.reviewed else ""
    print(f"wrote {done.path}: {done.texts} {done.language.label} texts{state}")
    if done.language.code not in {lang.code for lang in settings.project.languages}:
        print(f'Add "{done.language.label}" to [project] languages to build the form with it.')


def _cmd_demo(args: argparse.Namespace) -> None:
    from kobo_tip.demo import run_demo

    result = run_demo(Path(args.dir))
    print(f"internal report: {result.internal_report}")
    print(f"donor report:    {result.donor_report}")


_COMMANDS = {
    "init": _cmd_init,
    "form": _cmd_form,
    "sync": _cmd_sync,
    "report": _cmd_report,
    "status": _cmd_status,
    "store": _cmd_store,
    "targets": _cmd_targets,
    "serve": _cmd_serve,
    "hook": _cmd_hook,
    "demo": _cmd_demo,
    "translations": _cmd_translations,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failed run, 2 bad usage or config)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    with _logging_to_stderr(debug):
        return _run(args_list, debug)


def _run(args_list: list[str], debug: bool) -> int:
    try:
        args = build_parser().parse_args(args_list)
        if args.command is None:
            build_parser().print_help()
            return 2
        _COMMANDS[args.command](args)
    except KoboTipError as exc:
        if debug:
            log.exception("kobo-tip failed")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; committed work is kept, run the command again to resume.", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (run again with --debug for details).",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
