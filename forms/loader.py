"""Loading forms from YAML with error messages a form author can act on."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from forms.schema import Form

DATA_DIR = Path(__file__).resolve().parent / "data"
_REPO_ROOT = Path(__file__).resolve().parent.parent
_FILE_NAME = re.compile(r"^(?P<id>[a-z][a-z0-9_]*)\.v(?P<version>\d+)\.ya?ml$")
_UNION_TAGS = {"question", "group"}


class FormLoadError(Exception):
    """A form file cannot be used. ``str()`` names the file, the item and the reason."""

    def __init__(self, path: Path | str, problems: Iterable[str]) -> None:
        self.path = _display_path(path)
        self.problems = list(problems) or ["unknown problem"]
        super().__init__("\n".join(f"{self.path}: {p}" for p in self.problems))


def _display_path(path: Path | str) -> str:
    p = Path(path)
    try:
        return p.resolve().relative_to(_REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def load_form(path: Path | str) -> Form:
    """Reads and validates one YAML form file."""
    path = Path(path)
    try:
        raw_text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FormLoadError(path, [f"cannot read the file ({exc.strerror or exc})"]) from exc
    except UnicodeDecodeError as exc:
        raise FormLoadError(path, ["the file is not valid UTF-8"]) from exc
    try:
        data = yaml.safe_load(raw_text)
    except yaml.YAMLError as exc:
        raise FormLoadError(path, [f"invalid YAML: {_yaml_reason(exc)}"]) from exc
    if not isinstance(data, dict):
        raise FormLoadError(path, ["the file must contain a mapping with id, version, sections"])
    try:
        form = Form.model_validate(data)
    except ValidationError as exc:
        raise FormLoadError(path, _describe_errors(exc, data)) from None
    match = _FILE_NAME.match(path.name)
    if match and (match["id"], int(match["version"])) != (form.id, form.version):
        raise FormLoadError(
            path,
            [
                f"file name says form '{match['id']}' version {int(match['version'])}, "
                f"but the file has id '{form.id}' version {form.version}; rename the file "
                "or fix id/version"
            ],
        )
    return form


def load_bundled(data_dir: Path | str | None = None) -> dict[tuple[str, int], Form]:
    """Loads every ``<id>.v<version>.yaml`` in ``forms/data`` keyed by (id, version)."""
    directory = Path(data_dir) if data_dir is not None else DATA_DIR
    forms: dict[tuple[str, int], Form] = {}
    seen_in: dict[tuple[str, int], Path] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        if not _FILE_NAME.match(path.name):
            raise FormLoadError(
                path, ["bundled form files must be named '<form_id>.v<version>.yaml'"]
            )
        form = load_form(path)
        key = (form.id, form.version)
        if key in forms:
            raise FormLoadError(
                path,
                [
                    f"form '{form.id}' version {form.version} is already defined in "
                    f"{_display_path(seen_in[key])}"
                ],
            )
        forms[key] = form
        seen_in[key] = path
    return forms


def latest(forms: Mapping[tuple[str, int], Form], form_id: str) -> Form:
    """The highest version of ``form_id``; KeyError when there is none."""
    versions = [v for (fid, v) in forms if fid == form_id]
    if not versions:
        raise KeyError(f"no form with id '{form_id}'")
    return forms[(form_id, max(versions))]


def form_checksum(form: Form) -> str:
    """sha256 of the canonical JSON of the form; changes whenever the form content changes."""
    payload = json.dumps(
        form.model_dump(mode="json", by_alias=True),
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --- error translation -----------------------------------------------------------------


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return problem


def _describe_errors(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for err in exc.errors():
        where, field = _locate(tuple(err["loc"]), data)
        reason = _reason(err, field)
        for line in reason.splitlines():
            problems.append(f"{where}: {line}" if where else line)
    # The same message may come once per union branch; keep order, drop repeats.
    return list(dict.fromkeys(problems))


def _get(node: Any, key: Any) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return None


def _name(node: Any, fallback: str) -> str:
    ident = node.get("id") if isinstance(node, dict) else None
    return repr(str(ident)) if ident is not None else fallback


def _locate(loc: tuple[Any, ...], data: dict[str, Any]) -> tuple[str, list[str]]:
    """Turns a pydantic location into ("question 'x'", remaining field path)."""
    if not loc:
        return "", []
    head = loc[0]
    if head == "sections" and len(loc) >= 2 and isinstance(loc[1], int):
        section = _get(_get(data, "sections"), loc[1])
        where = f"section {_name(section, f'#{loc[1] + 1}')}"
        rest = list(loc[2:])
        if len(rest) >= 2 and rest[0] == "items" and isinstance(rest[1], int):
            item = _get(_get(section, "items"), rest[1])
            is_group = isinstance(item, dict) and item.get("kind") == "group"
            what = "group" if is_group else "question"
            where = f"{what} {_name(item, f'#{rest[1] + 1} in {where}')}"
            rest = rest[2:]
            if rest and rest[0] in _UNION_TAGS:
                rest = rest[1:]
            if is_group and len(rest) >= 2 and rest[0] == "questions" and isinstance(rest[1], int):
                q = _get(_get(item, "questions"), rest[1])
                where = f"question {_name(q, f'#{rest[1] + 1} in {where}')}"
                rest = rest[2:]
        return where, [str(p) for p in rest]
    if head == "indicators" and len(loc) >= 2 and isinstance(loc[1], int):
        ind = _get(_get(data, "indicators"), loc[1])
        return f"indicator {_name(ind, f'#{loc[1] + 1}')}", [str(p) for p in loc[2:]]
    return "", [str(p) for p in loc]


def _reason(err: Mapping[str, Any], field: list[str]) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if not field:
        return msg
    key = field[-1]
    path = ".".join(field)
    if kind == "extra_forbidden":
        return f"unknown key '{key}' (check the spelling)"
    if kind == "missing":
        return f"required key '{path}' is missing"
    if kind == "string_pattern_mismatch" and key == "id":
        return (
            f"id {err.get('input')!r} must be lowercase English snake_case "
            "(letters a-z, digits, '_', starting with a letter)"
        )
    if kind == "model_type":
        return f"'{path}' must be a mapping of keys, got {type(err.get('input')).__name__}"
    return f"'{path}': {msg}"
