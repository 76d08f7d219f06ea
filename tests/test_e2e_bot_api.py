"""End to end: schools and invites from the CLI, then the real bot polling a Bot API server
at TELEGRAM_API_URL, walked to a submitted response with documents stored under DATA_DIR."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
from sqlalchemy import select

from bot.config import load_settings
from bot.runner import run_bot
from storage.database import create_engine, create_sessionmaker
from storage.models import Attachment, Response, ResponseStatus
from tests.fake_bot_api import FakeBotApi
from tests.walk import NOTE, PDF

ROOT = Path(__file__).resolve().parent.parent
USER = 5550001


def cli(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_bot_registers_and_walks_through_a_bot_api_server(tmp_path, monkeypatch):
    api = FakeBotApi()
    base_url = await api.start()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DATA_DIR": str(tmp_path / "data"),
        "BOT_TOKEN": api.token,
        "TELEGRAM_API_URL": base_url,
    }
    schools = tmp_path / "schools.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.append(["Муниципалитет", "Наименование ОО", "Код ОО", "ШНОР", "Зона риска"])
    workbook.active.append(
        ["Черноземельский район", "МКОУ «Комсомольская СОШ № 1»", "08001", "да", "нет"]
    )
    workbook.save(schools)
    await asyncio.to_thread(
        cli, "import-schools", str(schools), "--region", "Республика Калмыкия", env=env
    )
    await asyncio.to_thread(
        cli, "campaign", "open", "--form", "shnor_school", "--deadline", "2099-12-15", env=env
    )
    invites = tmp_path / "invites.xlsx"
    out = await asyncio.to_thread(cli, "invites", "--out", str(invites), env=env)
    assert "Записано кодов: 2" in out
    rows = list(openpyxl.load_workbook(invites).active.iter_rows(values_only=True))
    school_row = next(r for r in rows if r[1] == "МКОУ «Комсомольская СОШ № 1»")
    assert school_row[4] == f"https://t.me/shnor_test_bot?start={school_row[3]}"

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(env_file=None)
    bot_task = asyncio.create_task(run_bot(settings))
    try:
        api.send_text(USER, f"/start {school_row[3]}")
        await api.reply(USER, "зарегистрированы", "Комсомольская")
        api.click(USER, "▶ Начать заполнение")
        await api.reply(USER, "вопрос 1 из 14")
        for value in ("25", "10", "9", "8", "7", "6", "5", "4"):
            api.send_text(USER, value)
            await api.reply(USER, "✅ Сохранено")
        # Six yes/no questions: the first three «Да» with a document, the rest «Нет» with a note.
        for index in range(6):
            await api.reply(USER, f"вопрос {9 + index} из 14")
            if index < 3:
                api.click(USER, "Да")
                await api.reply(USER, "Прикрепите подтверждающий документ")
                api.send_document(USER, PDF, f"документ-{index}.pdf", "application/pdf")
                await api.reply(USER, "сохранён")
                api.click(USER, "✅ Готово")
            else:
                api.click(USER, "Нет")
                await api.reply(USER, "пояснительную записку")
                api.send_text(USER, NOTE)
        await api.reply(USER, "Заполнено: 14 из 14")
        api.click(USER, "📨 Отправить анкету")
        await api.reply(USER, "Отправить анкету")
        api.click(USER, "Да, отправить")
        await api.reply(USER, "Спасибо! Анкета")
    finally:
        bot_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await bot_task
        await api.stop()

    assert "setmycommands" in api.calls and "answercallbackquery" in api.calls
    engine = create_engine(settings.storage.url)
    try:
        async with create_sessionmaker(engine)() as session:
            response = await session.scalar(select(Response))
            assert response.status == ResponseStatus.SUBMITTED
            stored = list(await session.scalars(select(Attachment)))
    finally:
        await engine.dispose()
    assert len(stored) == 3
    for attachment in stored:
        path = tmp_path / "data" / "files" / attachment.storage_path
        assert path.read_bytes() == PDF
