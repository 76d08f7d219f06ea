"""Content-addressed document storage under DATA_DIR and type checks by content."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import filetype

from storage.xlsx_safety import MAX_TOTAL_UNCOMPRESSED, looks_like_zip_bomb

# Extension → a human label. The real type is decided by the file's bytes, never by its name.
ACCEPTED_TYPES: dict[str, str] = {
    "pdf": "PDF",
    "doc": "Word",
    "docx": "Word",
    "xls": "Excel",
    "xlsx": "Excel",
    "odt": "OpenDocument",
    "ods": "OpenDocument",
    "jpg": "JPG",
    "png": "PNG",
    "zip": "ZIP",
}
ACCEPTED_LIST = "PDF, DOC/DOCX, XLS/XLSX, ODT/ODS, JPG, PNG или ZIP"
_OLE_TYPES = {"doc", "xls"}  # one container format: the sniffer cannot always tell them apart
_ZIP_TYPES = {"zip", "docx", "xlsx", "odt", "ods"}  # archives inside: checked for zip bombs


@dataclass(frozen=True, slots=True)
class StoredFile:
    sha256: str
    size: int
    extension: str
    mime_type: str
    relative_path: str


class UnsupportedFileType(ValueError):
    def __init__(self, detected: str | None) -> None:
        super().__init__(detected or "unknown")
        self.detected = detected


class UnsafeArchive(UnsupportedFileType):
    """A zip-based file (ZIP, DOCX, XLSX, ODT…) whose directory promises far too much data."""


def shorten_name(name: str, limit: int = 200) -> str:
    """Collapse whitespace and cut a long file name in its stem, keeping the extension."""
    name = " ".join(name.split())
    if len(name) <= limit:
        return name
    suffix = Path(name).suffix
    if not suffix or len(suffix) > 10 or len(suffix) >= len(name):
        return name[: limit - 1].rstrip() + "…"
    stem = name[: -len(suffix)]
    return stem[: limit - len(suffix) - 1].rstrip() + "…" + suffix


def check_archive(path: Path) -> None:
    """Refuse a zip bomb (or a broken archive) by reading only its central directory."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise UnsafeArchive("zip") from exc
    # scans and PDFs hardly compress: a real archive unpacks to about its own size
    if looks_like_zip_bomb(members, max(MAX_TOTAL_UNCOMPRESSED, 2 * path.stat().st_size)):
        raise UnsafeArchive("zip")


def extension_of(name: str | None) -> str:
    suffix = Path(name or "").suffix.lower().lstrip(".")
    return "jpg" if suffix == "jpeg" else suffix


def claimed_type_is_accepted(file_name: str | None) -> bool:
    """A cheap first check on the name the sender claims; the bytes are checked later."""
    return extension_of(file_name) in ACCEPTED_TYPES


def sniff(path: Path) -> tuple[str, str]:
    """Return (extension, mime) judged by content, or raise UnsupportedFileType."""
    kind = filetype.guess(str(path))
    if kind is None:
        raise UnsupportedFileType(None)
    ext = "jpg" if kind.extension == "jpeg" else kind.extension
    if ext not in ACCEPTED_TYPES:
        raise UnsupportedFileType(ext)
    return ext, kind.mime


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def temp_path(self) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp, suffix=".part")
        os.close(fd)
        return Path(name)

    def absolute(self, relative_path: str) -> Path:
        return self.root / relative_path

    def put(self, source: Path, claimed_name: str | None = None) -> StoredFile:
        """Check the type by content, then move the file to its content address.

        The claimed name picks between doc and xls, which share one container format.
        """
        ext, mime = sniff(source)
        if ext in _ZIP_TYPES:
            check_archive(source)
        claimed = extension_of(claimed_name)
        if ext in _OLE_TYPES and claimed in _OLE_TYPES:
            ext = claimed
        digest = hashlib.sha256()
        size = 0
        with source.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
        sha = digest.hexdigest()
        relative = f"{sha[:2]}/{sha[2:4]}/{sha}.{ext}"
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            source.unlink(missing_ok=True)
        else:
            shutil.move(source, target)
        return StoredFile(sha, size, ext, mime, relative)
