"""The documents archive: ``Муниципалитет/Школа/<номер> вопрос <N> «<вопрос>» <имя файла>``.

A document's name starts with the question as the director saw it: the section's number, the
question's number in the walk («Раздел 1.2.4 · вопрос 9 из 14», the same number as on the
review screen) and its short title, e.g. ``1.2.4 вопрос 9 «Участие в мероприятиях по
профмастерству» приказ.pdf`` (:func:`question_label`); the original name follows.

Names are made safe for Windows (no ``<>:"/\\|?*`` or control characters, no trailing dots or
spaces, no reserved device names such as ``CON`` or ``LPT1``, bounded length so the whole path
stays well under 260 characters) and unique, compared case-insensitively as Windows does:
a clash gets `` (2)``, `` (3)``… before the extension. A municipality's own documents go to
``Муниципалитет/Документы муниципалитета/``.

:class:`ArchivePlanner` assigns the paths; it is used for the answers sheets whether or not a
ZIP is written, so the sheet and the archive always agree. It relies on the export order
(everything of a municipality, and of a school, is contiguous) and remembers only the names
of the current municipality and school.
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path, PurePosixPath

from storage.files import FileStore

log = logging.getLogger(__name__)

FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
    | {"COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"}
)
# Municipality + school + file stay under ~215 characters, leaving room for the folder the
# archive is unpacked into within Windows' 260-character path limit.
MUNICIPALITY_LIMIT = 50
FOLDER_LIMIT = 70  # a school's folder
FILE_LIMIT = 90  # extension included
LABEL_LIMIT = 60  # the question part of a file name
TITLE_LIMIT = 40  # the question's title inside it
MIN_ORIGINAL = 16  # room always left for the original name
ELLIPSIS = "…"
MUNICIPALITY_FOLDER = "Документы муниципалитета"
# Already compressed formats are stored as is; the rest is deflated.
COMPRESSED = frozenset({".pdf", ".docx", ".xlsx", ".odt", ".ods", ".jpg", ".jpeg", ".png", ".zip"})


def safe_name(
    name: str, limit: int, is_file: bool = True, fallback: str = "_", *, part: bool = False
) -> str:
    """One path component that Windows, macOS and Linux all accept.

    A file keeps its extension when the name has to be shortened. ``part``: the end of a
    component (after a label), where a device name such as ``CON`` is harmless.
    """
    cleaned = FORBIDDEN.sub("_", name or "")
    cleaned = " ".join(cleaned.split())  # collapse whitespace, including non-breaking
    cleaned = cleaned.rstrip(" .").lstrip(" ")
    if not cleaned or set(cleaned) <= {"."}:
        cleaned = fallback
    stem, ext = split_extension(cleaned) if is_file else (cleaned, "")
    if not part and stem.split(".")[0].upper().rstrip(" ") in RESERVED:
        stem = f"_{stem}"
    suffix = f".{ext}" if ext else ""
    stem = shorten_middle(stem, max(1, limit - len(suffix))).rstrip(" .") or fallback
    return f"{stem}{suffix}"


def split_extension(name: str) -> tuple[str, str]:
    """``(stem, ext)`` without the dot; a dot inside «1.2.4 вопрос…» is not an extension."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or not ext or len(ext) > 10 or " " in ext:
        return name, ""
    return stem, ext


def question_label(number: str, index: int | None, title: str) -> str:
    """``1.2.4 вопрос 9 «Title»``: the section's number, the question's number in the walk
    (``None`` when the question is not shown to this respondent) and a short title."""
    title = " ".join(title.split())
    if len(title) > TITLE_LIMIT:
        title = title[: TITLE_LIMIT - 1].rstrip(" .,:;—-") + "…"
    position = f" вопрос {index}" if index is not None else ""
    return f"{number}{position} «{title}»"


def document_name(label: str, original_name: str) -> str:
    """``<label> <original name>`` within :data:`FILE_LIMIT`, the original keeping its end."""
    label = safe_name(label, LABEL_LIMIT, is_file=False)
    room = max(MIN_ORIGINAL, FILE_LIMIT - len(label) - 1)
    return safe_name(f"{label} {safe_name(original_name, room, part=True)}", FILE_LIMIT)


def shorten_middle(text: str, limit: int) -> str:
    """Keep the beginning and the end: school names differ at the end («…школа №12»)."""
    if len(text) <= limit:
        return text
    if limit < 8:
        return text[:limit]
    head = limit * 2 // 5
    tail = limit - head - len(ELLIPSIS)
    return f"{text[:head].rstrip()}{ELLIPSIS}{text[-tail:].lstrip()}"


def with_number(name: str, number: int, limit: int, is_file: bool = True) -> str:
    """``name (N)``; for a file the number goes before the extension."""
    stem, ext = split_extension(name) if is_file else (name, "")
    suffix = f".{ext}" if ext else ""
    tail = f" ({number})"
    stem = shorten_middle(stem, max(1, limit - len(suffix) - len(tail))).rstrip(" .")
    return f"{stem}{tail}{suffix}"


class _Names:
    """Names taken in one folder, compared as Windows does (case-insensitively)."""

    def __init__(self, limit: int, is_file: bool) -> None:
        self.limit = limit
        self.is_file = is_file
        self.taken: set[str] = set()
        self.next_number: dict[str, int] = {}

    def unique(self, name: str) -> str:
        folded = name.casefold()
        candidate = name
        if folded in self.taken:
            number = self.next_number.get(folded, 1)
            while candidate.casefold() in self.taken:
                number += 1
                candidate = with_number(name, number, self.limit, self.is_file)
            self.next_number[folded] = number
        self.taken.add(candidate.casefold())
        return candidate


class ArchivePlanner:
    """Gives every document its path inside the archive, in export order."""

    def __init__(self) -> None:
        self._municipality_folders: dict[int, str] = {}
        self._municipality_names = _Names(MUNICIPALITY_LIMIT, is_file=False)
        self._current_municipality: int | None = None
        self._school_folders: dict[int | None, str] = {}
        self._folder_names = _Names(FOLDER_LIMIT, is_file=False)
        self._current_folder: tuple[int, int | None] | None = None
        self._file_names = _Names(FILE_LIMIT, is_file=True)
        self._safe_files: dict[tuple[str, str], str] = {}  # the same names come again and again

    def _municipality(self, municipality_id: int, name: str) -> str:
        folder = self._municipality_folders.get(municipality_id)
        if folder is None:
            folder = self._municipality_names.unique(safe_name(name, MUNICIPALITY_LIMIT, False))
            self._municipality_folders[municipality_id] = folder
        if self._current_municipality != municipality_id:
            self._current_municipality = municipality_id
            self._school_folders = {}
            self._folder_names = _Names(FOLDER_LIMIT, is_file=False)
        return folder

    def _school(self, school_id: int | None, name: str | None) -> str:
        folder = self._school_folders.get(school_id)
        if folder is None:
            wanted = (
                MUNICIPALITY_FOLDER
                if school_id is None
                else safe_name(name or "", FOLDER_LIMIT, False)
            )
            folder = self._folder_names.unique(wanted)
            self._school_folders[school_id] = folder
        return folder

    def path(
        self,
        municipality_id: int,
        municipality: str,
        school_id: int | None,
        school: str | None,
        label: str,
        original_name: str,
    ) -> str:
        """``label``: the question the document answers (:func:`question_label`)."""
        top = self._municipality(municipality_id, municipality)
        folder = self._school(school_id, school)
        key = (municipality_id, school_id)
        if self._current_folder != key:
            self._current_folder = key
            self._file_names = _Names(FILE_LIMIT, is_file=True)
        safe = self._safe_files.get((label, original_name))
        if safe is None:
            safe = document_name(label, original_name)
            if len(self._safe_files) > 10_000:
                self._safe_files.clear()
            self._safe_files[(label, original_name)] = safe
        file_name = self._file_names.unique(safe)
        return f"{top}/{folder}/{file_name}"


class DocumentArchive:
    """Writes the ZIP as documents come, so memory does not grow with the archive."""

    def __init__(self, path: Path, files: FileStore) -> None:
        self.path = path
        self.files = files
        path.parent.mkdir(parents=True, exist_ok=True)
        self._zip = zipfile.ZipFile(path, "w", allowZip64=True)
        self.added = 0
        self.missing: list[str] = []

    def add(self, archive_path: str, storage_path: str) -> bool:
        source = self.files.absolute(storage_path)
        if not source.is_file():
            log.warning("document %s is missing on disk; left out of %s", source, self.path)
            self.missing.append(archive_path)
            return False
        suffix = PurePosixPath(archive_path).suffix.lower()
        compression = zipfile.ZIP_STORED if suffix in COMPRESSED else zipfile.ZIP_DEFLATED
        self._zip.write(source, archive_path, compress_type=compression)
        self.added += 1
        return True

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> DocumentArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
