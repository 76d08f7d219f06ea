"""Open untrusted .xlsx files (admin uploads, imports) without letting them hurt the bot.

Checks, in order, before openpyxl sees a single byte:

* the file exists, is a regular file and is not empty;
* it is a zip archive (a CSV or an old .xls renamed to .xlsx is not);
* the archive is not a zip bomb: at most ``MAX_MEMBERS`` members, at most
  ``MAX_TOTAL_UNCOMPRESSED`` bytes in total, and no member that is both bigger than
  ``MAX_SUSPICIOUS_MEMBER`` and compressed better than ``MAX_COMPRESSION_RATIO``:1.
  Only the central directory is read; nothing is decompressed. The declared sizes
  can be trusted as an upper bound: ``zipfile`` never returns more bytes for a
  member than its declared ``file_size``;
* the archive contains ``xl/workbook.xml`` (an .ods or .docx does not);
* openpyxl can load it (``data_only=True``: formulas give their cached values;
  ``keep_links=False``: external links are not loaded).

XML safety: openpyxl parses worksheets and shared strings with
``defusedxml.ElementTree.iterparse`` when defusedxml is installed
(``openpyxl.xml.DEFUSEDXML``); the remaining parts go through lxml with
``resolve_entities=False``. ``open_workbook_safely`` refuses to run when openpyxl
has defusedxml switched off (``OPENPYXL_DEFUSEDXML=False``) — that is a deployment
error, so it raises ``RuntimeError``, not ``UnsafeWorkbookError``.

The file is read into memory once (it is at most ``MAX_FILE_BYTES``), so the
workbook holds no open file handle and the file name's extension does not matter
(uploads are often saved under temporary names). Still call ``wb.close()`` when
done with a read-only workbook.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # openpyxl (with numpy, PIL, lxml) is loaded by the functions that open files
    import openpyxl

MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_TOTAL_UNCOMPRESSED = 200 * 1024 * 1024
MAX_MEMBERS = 10_000
MAX_COMPRESSION_RATIO = 100
MAX_SUSPICIOUS_MEMBER = 10 * 1024 * 1024

MSG_NOT_FOUND = "Файл не найден. Проверьте, что выбран нужный файл, и попробуйте снова."
MSG_EMPTY = "Файл пустой. Проверьте, что выбран нужный файл, и загрузите его снова."
MSG_NOT_ZIP = (
    "Файл не похож на таблицу Excel (.xlsx). Сохраните его в формате .xlsx и попробуйте снова."
)
MSG_NOT_XLSX = (
    "Файл не похож на таблицу Excel (.xlsx): это архив или документ другого типа. "
    "Откройте таблицу в Excel или LibreOffice, сохраните в формате .xlsx и попробуйте снова."
)
MSG_TOO_BIG = (
    "Файл слишком большой или подозрительно сильно сжат, поэтому мы его не открываем. "
    "Уберите из таблицы лишние данные, сохраните её заново в формате .xlsx и попробуйте снова."
)
MSG_BROKEN = (
    "Не удалось прочитать таблицу: файл повреждён или сохранён с ошибками. "
    "Откройте его в Excel, сохраните заново в формате .xlsx и попробуйте снова."
)


class UnsafeWorkbookError(ValueError):
    """The file cannot be opened safely; ``str(exc)`` is a Russian message for the user."""


def defusedxml_enabled() -> bool:
    """True when openpyxl parses sheet XML with defusedxml (it must, for untrusted files)."""
    import openpyxl.xml
    from openpyxl.xml import functions

    return bool(openpyxl.xml.DEFUSEDXML) and functions.iterparse.__module__.startswith("defusedxml")


def looks_like_zip_bomb(members: Sequence[zipfile.ZipInfo], max_total: int | None = None) -> bool:
    """Judge an archive by its central directory alone (see the module docstring)."""
    if max_total is None:
        max_total = MAX_TOTAL_UNCOMPRESSED
    if len(members) > MAX_MEMBERS:
        return True
    total = 0
    for info in members:
        total += info.file_size
        if total > max_total:
            return True
        if info.file_size > MAX_SUSPICIOUS_MEMBER:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > MAX_COMPRESSION_RATIO:
                return True
    return False


def check_xlsx_archive(data: bytes) -> None:
    """Validate the zip structure of ``data`` without decompressing anything."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise UnsafeWorkbookError(MSG_NOT_ZIP) from exc
    with archive:
        members = archive.infolist()
        if looks_like_zip_bomb(members):
            raise UnsafeWorkbookError(MSG_TOO_BIG)
        names = {info.filename for info in members}
        if "xl/workbook.xml" not in names:
            raise UnsafeWorkbookError(MSG_NOT_XLSX)


def open_workbook_safely(path: Path | str, *, read_only: bool = True) -> openpyxl.Workbook:
    """Open an untrusted .xlsx file or raise ``UnsafeWorkbookError`` with a Russian message."""
    if not defusedxml_enabled():
        raise RuntimeError(
            "openpyxl is not using defusedxml: install defusedxml and do not set "
            "OPENPYXL_DEFUSEDXML=False"
        )
    path = Path(path)
    try:
        if not path.is_file():
            raise UnsafeWorkbookError(MSG_NOT_FOUND)
        size = path.stat().st_size
        if size == 0:
            raise UnsafeWorkbookError(MSG_EMPTY)
        if size > MAX_FILE_BYTES:
            raise UnsafeWorkbookError(MSG_TOO_BIG)
        data = path.read_bytes()
    except OSError as exc:
        raise UnsafeWorkbookError(MSG_NOT_FOUND) from exc

    check_xlsx_archive(data)
    import openpyxl

    try:
        return openpyxl.load_workbook(
            io.BytesIO(data), read_only=read_only, data_only=True, keep_links=False
        )
    except Exception as exc:  # openpyxl raises many types for broken files
        raise UnsafeWorkbookError(MSG_BROKEN) from exc
