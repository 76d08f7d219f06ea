"""Forms known to this process, by id and version, with their engines."""

from __future__ import annotations

from functools import cache

from forms.engine import FormEngine
from forms.schema import Form


class FormRegistry:
    def __init__(self, forms: dict[tuple[str, int], Form]) -> None:
        self._forms = dict(forms)
        self.engine = cache(self._engine)

    def _engine(self, form_id: str, version: int) -> FormEngine:
        try:
            return FormEngine(self._forms[(form_id, version)])
        except KeyError:
            raise LookupError(f"form {form_id} v{version} is not loaded") from None

    def latest(self, form_id: str) -> Form:
        versions = [form for (fid, _), form in self._forms.items() if fid == form_id]
        if not versions:
            raise LookupError(f"unknown form {form_id!r}")
        return max(versions, key=lambda form: form.version)

    def all(self) -> list[Form]:
        return sorted(self._forms.values(), key=lambda form: (form.id, form.version))
