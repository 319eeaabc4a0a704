"""The XLSForm of contract section 2: builder (sheets), writer (xlsx), convert (pyxform + ODK Validate)."""

from kobo_tip.form.build import FormBuild, build_form

__all__ = ["FormBuild", "build_form"]
