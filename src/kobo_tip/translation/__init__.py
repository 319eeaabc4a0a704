"""Translations as translators work: export a language's texts to XLSX or gettext .po, check a
translated file and import it as the project's ``translations/<code>.toml``."""

from kobo_tip.translation.catalogue import Entry, catalogue
from kobo_tip.translation.project import export_translation, import_translation

__all__ = ["Entry", "catalogue", "export_translation", "import_translation"]
