"""The console adapter walks the same core from a script."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from bot.console import ConsoleFileFetcher, ConsoleSession
from storage.demo import demo_user_id, seed_demo
from storage.models import Attachment, Response, ResponseStatus
from tests.walk import NOTE, PDF


def scripted(lines: list[str]):
    queue = iter(lines)
    return lambda: next(queue, None)


async def test_console_walks_the_whole_form_from_a_script(services, tmp_path):
    form = services.forms.latest("shnor_school")
    async with services.sessions() as session:
        await seed_demo(session, form, services.conversation.today())
        await session.commit()
    services.conversation.register_fetcher("console", ConsoleFileFetcher())
    document = tmp_path / "приказ.pdf"
    document.write_bytes(PDF)
    out = io.StringIO()
    console = ConsoleSession(services.conversation, demo_user_id(form), out)
    counts = ["30", "10", "10", "10", "10", "10", "10", "10"]
    # pd_events: «да» + a document; the rest «нет» with a note; risk block: «да» + document.
    script = [*counts, "#1", str(document), "готово"]
    script += ["нет", NOTE] * 5
    script += ["да", str(document), "Готово"] * 3
    script += ["📨 Отправить анкету", "#1"]
    await console.run(scripted(script))
    text = out.getvalue()
    assert "Раздел 1.2.3 · вопрос 1 из 17" in text
    assert "[#1] Да   [#2] Нет" in text
    assert "Заполнено: 17 из 17" in text
    assert "Спасибо! Анкета" in text
    async with services.sessions() as session:
        response = await session.scalar(select(Response))
        assert response.status == ResponseStatus.SUBMITTED
        stored = list(await session.scalars(select(Attachment)))
        assert len(stored) == 4 and {a.original_name for a in stored} == {"приказ.pdf"}


def test_console_command_runs_in_a_subprocess(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input="25\nвыход\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "вопрос 2 из 17" in result.stdout
    assert (tmp_path / "data" / "demo.sqlite3").exists()


def test_run_without_token_points_to_the_console(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "BOT_TOKEN не задан" in result.stdout
    assert "python -m bot console" in result.stdout
