"""kobo-tip: count victims identified or referred by trained stakeholders, from KoboToolbox or
ODK Central submissions, and report them safely."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kobo-tip")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

from kobo_tip.errors import KoboTipError

__all__ = ["KoboTipError", "__version__"]
