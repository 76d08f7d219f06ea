"""The console adapter walks the same core from a script."""

from __future__ import annotations

import io
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.console import ConsoleFileFetcher, ConsoleSession, looks_like_path, offers_document
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
    assert "python3 scripts/dev.py console" in result.stdout


ROOT = Path(__file__).resolve().parent.parent
LONG_NOTE = (
    "Мероприятия по повышению квалификации педагогов проведены не в полном объёме. "
    "Причина в отсутствии финансирования в первом полугодии, работа продолжится осенью"
)
COUNTS = ["30", "10", "10", "10", "10", "10", "10", "10"]


def console_env(tmp_path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "DATA_DIR": str(tmp_path / "data"),
        "HOME": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }


def run_console(tmp_path, stdin: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = console_env(tmp_path)
    env.pop("HOME")  # «~» cannot be expanded: the console must still not crash
    return subprocess.run(
        [sys.executable, "-m", "bot", "console", *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_hostile_lines_never_end_the_console(tmp_path):
    lines = [
        LONG_NOTE,  # a long text with full stops: once «File name too long»
        "~10",  # once «Could not determine home directory»
        "~/приказ.pdf",
        "/нет/такого/файла.pdf",
        "\x1b[A\x07\x00ab\x7fc",  # an arrow key, a bell, a NUL
        "я" * 10_000,
        "\t",
    ]
    junk = b"\xff\xfe\x00\x80 \xc3\x28 \xed\xa0\x80\n"
    stdin = "\n".join(lines).encode() + b"\n" + junk  # ends without «выход»: EOF
    result = run_console(tmp_path, stdin)
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, err
    assert "Traceback" not in err and "Error" not in err, err
    assert "До свидания" in out
    assert "вопрос 1 из 17" in out and "вопрос 2 из 17" not in out  # nothing taken as a count
    assert "слишком длинное" in out


def test_a_path_counts_as_a_file_only_while_a_document_is_expected(tmp_path):
    document = tmp_path / "приказ.pdf"
    document.write_bytes(PDF)
    lines = [
        str(document),  # a number is expected: the path is just text
        *COUNTS,
        "#1",  # «Да» on the first yes/no question: now a document is expected
        "/нет/такого/файла.pdf",
        "~/нет/такого.pdf",
        str(tmp_path),  # a folder
        str(document),
        "готово",
        "выход",
    ]
    result = run_console(tmp_path, "\n".join(lines).encode() + b"\n")
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, err
    assert "Traceback" not in err, err
    assert "Файл не найден: /нет/такого/файла.pdf" in out
    assert "Файл не найден: ~/нет/такого.pdf" in out
    assert f"Файл не найден: {tmp_path}" in out
    assert "Файл «приказ.pdf» сохранён" in out
    assert out.count("Файл «приказ.pdf»") == 1  # the path typed for a count was not a file


def test_ctrl_c_ends_the_console_on_the_first_press(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "console"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=console_env(tmp_path),
        cwd=ROOT,
    )
    seen = queue.Queue()
    reader = threading.Thread(target=lambda: [seen.put(b) for b in process.stdout], daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if "вопрос 1 из 17" in seen.get(timeout=1).decode():
                break
        except queue.Empty:
            continue
    else:
        process.kill()
        raise AssertionError("the console did not show the first question")
    time.sleep(0.3)  # it is waiting for input now
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("one Ctrl-C did not end the console") from None
    time.sleep(0.2)  # the reader thread takes the last lines
    rest = b"".join(list(seen.queue)).decode()
    err = process.stderr.read().decode()
    assert code == 130, err
    assert "Traceback" not in err and "Aborted" not in err, err
    assert "До свидания" in rest


def test_reset_starts_the_demo_again(tmp_path):
    first = run_console(tmp_path, "25\nвыход\n".encode())
    assert "вопрос 2 из 17" in first.stdout.decode()
    again = run_console(tmp_path, "выход\n".encode(), "--reset")
    out = again.stdout.decode()
    assert again.returncode == 0, again.stderr.decode()
    assert "Демо-база удалена" in out
    assert "вопрос 1 из 17" in out and "вопрос 2 из 17" not in out
    foreign = run_console(tmp_path, b"", "--reset", "--database", "sqlite+aiosqlite:///x.db")
    assert foreign.returncode == 2 and "--reset" in foreign.stderr.decode()


def test_an_unknown_form_is_named_without_a_traceback(tmp_path):
    result = run_console(tmp_path, b"", "--form", "nope")
    err = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in err
    assert "«nope»" in err and "shnor_school" in err
    bad_url = run_console(tmp_path, b"", "--database", "mysql://x")
    assert bad_url.returncode == 2 and "--database" in bad_url.stderr.decode()
    file_name = run_console(tmp_path, "выход\n".encode(), "--database", str(tmp_path / "my.db"))
    assert file_name.returncode == 0 and (tmp_path / "my.db").is_file()


@pytest.mark.parametrize(
    ("line", "is_path"),
    [
        ("/home/директор/приказ.pdf", True),
        ("~/приказ.pdf", True),
        ("./скан.jpg", True),
        ("C:\\Users\\school\\приказ.docx", True),
        ("приказ.pdf", True),
        ("мой приказ.pdf", True),
        ("'/путь с пробелами/приказ.pdf'", True),
        ("Приказ № 12 от 01.02.2023", False),  # an evidence reference, typed as text
        ("1/2 педагогов прошли курсы", False),
        ("и т.д", False),
        (LONG_NOTE, False),
        ("~10", True),  # looks like one, so «Файл не найден» while a document is expected
    ],
)
def test_what_looks_like_a_path(line, is_path):
    assert looks_like_path(line) is is_path


def test_a_request_for_a_file_is_recognised_in_every_document_step():
    from handlers import callbacks as cb
    from handlers import deadlines_chat, texts
    from handlers.types import Button, OutText
    from storage.files import ACCEPTED_LIST

    asks = [
        texts.ASK_DOCUMENTS.format(what="", accepted=ACCEPTED_LIST, limit="20 МБ"),
        texts.SEND_DOCUMENT.format(accepted=ACCEPTED_LIST, limit="20 МБ"),
        texts.NEED_DOCUMENT,
        texts.FILE_BAD_NAME.format(name="a.exe", accepted=ACCEPTED_LIST),
        texts.FILE_TOO_BIG.format(name="a.pdf", size="30 МБ", limit="20 МБ"),
        deadlines_chat.ASK_EVIDENCE.format(number="1", action="…", what="", accepted=ACCEPTED_LIST),
    ]
    for text in asks:
        assert offers_document(OutText(text)), text
    done = OutText("📎 …", [[Button(texts.BTN_DONE, cb.encode(cb.Action.DOCS_DONE, 1))]])
    assert offers_document(done)
    for text in (texts.ASK_NOTE, texts.TYPE_NUMBER, texts.FILE_NOT_EXPECTED, texts.IDLE_HINT):
        assert not offers_document(OutText(text)), text
