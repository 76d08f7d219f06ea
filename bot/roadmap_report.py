"""What `roadmap import` prints: the report of every row and the words of a summary."""

from __future__ import annotations

import re
from datetime import date

import typer


def period_text(entry: dict) -> str:
    start, end = (date.fromisoformat(entry["period"][k]) for k in ("start", "end"))
    return f"{start:%d.%m.%Y}–{end:%d.%m.%Y}"


def saved_word(summary) -> str:
    if summary.created:
        return "загружена"
    return "без изменений" if summary.unchanged else "обновлена"


def slug(text: str) -> str:
    slug = re.sub(r"[^0-9a-zA-Zа-яА-ЯёЁ_]+", "_", text.strip()).strip("_").lower()
    return slug[:100] or "roadmap"


def roadmap_report(result) -> dict:
    rm = result.roadmap
    rows = []
    for item in rm.items:
        deadline = item.deadline
        rows.append(
            {
                "row": item.row,
                "number": item.number,
                "action": item.action[:120],
                "deadline_text": item.deadline_text,
                "deadline": deadline.to_json() if deadline else None,
                "read_as": deadline.describe() if deadline else None,
                "due_dates": [d.isoformat() for d in item.due_dates(rm.period)],
                "error": item.deadline_error,
                "executor_roles": list(item.executor_roles),
                "level": item.level,
                "applies_to": rm.audience(item).to_json(),
            }
        )
    return {
        "id": rm.id,
        "title": rm.title,
        "level": rm.level,
        "period": {"start": rm.period.start.isoformat(), "end": rm.period.end.isoformat()},
        "period_from_title": result.period_from_title,
        "applies_to": rm.applies_to.to_json() if rm.applies_to else None,
        "items": len(rm.items),
        "rows": rows,
        "problems": [p.model_dump() for p in result.problems],
    }


def echo_report(entry: dict, err: bool = False) -> None:
    typer.echo(f"{entry['id']}: {entry['title'][:80]} ({entry['items']} пунктов)", err=err)
    if entry.get("period_from_title"):
        typer.echo(f"  Период из заголовка таблицы: {period_text(entry)}.", err=err)
    for row in entry["rows"]:
        if row["error"]:
            read = f"✗ не разобрано: {row['error']}"
        else:
            dates = ", ".join(row["due_dates"]) or "без даты"
            read = f"{row['deadline']['kind']}: {row['read_as']} → {dates}"
        where = f"стр. {row['row']}, п. {row['number']}"
        typer.echo(f"  {where}: «{row['deadline_text']}» {read}", err=err)
    for problem in entry["problems"]:
        mark = "!" if problem["severity"] == "warning" else "✗"
        typer.echo(f"  {mark} стр. {problem['row']}: {problem['message']}", err=err)
