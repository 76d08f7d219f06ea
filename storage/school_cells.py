"""Cells and headers of the schools list: header vocabulary, text keys, yes/no flags."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

# Field id -> (canonical header, accepted header variants, already normalised).
COLUMNS: dict[str, tuple[str, frozenset[str]]] = {
    "municipality": (
        "Муниципалитет",
        frozenset(
            {
                "муниципалитет",
                "муниципальное образование",
                "мо",
                "муниципальный район",
                "муниципальный округ",
                "муниципальный район городской округ",
                "муниципальный район/городской округ",
                "городской округ",
                "район",
            }
        ),
    ),
    "name": (
        "Наименование ОО",
        frozenset(
            {
                "наименование оо",
                "наименование образовательной организации",
                "полное наименование оо",
                "полное наименование образовательной организации",
                "краткое наименование оо",
                "краткое наименование образовательной организации",
                "сокращенное наименование оо",
                "сокращенное наименование образовательной организации",
                "наименование школы",
                "название школы",
                "название оо",
                "наименование",
                "образовательная организация",
                "оо",
                "школа",
            }
        ),
    ),
    "code": (
        "Код ОО",
        frozenset(
            {
                "код оо",
                "код",
                "код образовательной организации",
                "код школы",
            }
        ),
    ),
    "shnor": ("ШНОР", frozenset({"шнор"})),
    "shnsu": ("ШНСУ", frozenset({"шнсу"})),
    "risk_zone": ("Зона риска", frozenset({"зона риска", "в зоне риска", "риск"})),
    "director": (
        "Директор",
        frozenset(
            {
                "директор",
                "фио директора",
                "директор фио",
                "директор оо",
                "руководитель",
                "фио руководителя",
                "руководитель оо",
                "руководитель фио",
            }
        ),
    ),
}
REQUIRED_FIELDS = ("municipality", "name")
FLAG_FIELDS = ("shnor", "shnsu", "risk_zone")

TRUE_WORDS = frozenset({"да", "+", "1", "x", "х", "true", "v", "✓", "✔"})
FALSE_WORDS = frozenset({"нет", "-", "–", "—", "0", "false"})

_BRACKETS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
# Regexes, not str.translate: translate with a mapping costs ~10 µs per cell.
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_QUOTES = re.compile("[«»“”„‟″'`]")


def collapse(text: str) -> str:
    """Strip, drop invisible characters and collapse inner whitespace (incl. NBSP)."""
    return " ".join(_INVISIBLE.sub("", text).split())


def normalize_key(text: str) -> str:
    """Comparison key for names: case, 'ё', quotes and whitespace do not matter.

    Use it in the database importer too, so the file and the DB agree on duplicates.
    """
    return _QUOTES.sub('"', collapse(text).casefold().replace("ё", "е"))


def name_digest(municipality_key: str, name_key: str) -> bytes:
    """A 12-byte stand-in for a (municipality, school name) key in big indexes: a third of
    the memory of the strings; a collision is about as likely as 2⁻⁹⁶ per pair."""
    data = f"{municipality_key}\x00{name_key}".encode()
    return hashlib.blake2b(data, digest_size=12).digest()


def normalize_header(text: str) -> str:
    text = _BRACKETS.sub(" ", text)
    text = normalize_key(text).strip(" .:*№#")
    return collapse(text)


def cell_text(value: object) -> str:
    """Cell value as collapsed text; numbers like 39001.0 become "39001"."""
    if value is None:
        return ""
    if type(value) is str:
        return collapse(value)
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time():
            return value.date().strftime("%d.%m.%Y")
        return value.strftime("%d.%m.%Y %H:%M")
    if isinstance(value, dt.date):
        return value.strftime("%d.%m.%Y")
    return collapse(str(value))


def parse_flag(value: object) -> bool | None:
    """True/False for a recognised yes/no value (empty = False), None if unrecognised."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = cell_text(value).casefold()
    if text == "":
        return False
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    return None
