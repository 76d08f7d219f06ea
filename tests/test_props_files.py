"""Files with random names, types and contents sent at a document step through the real
Telegram intake and download (issue 11 §4): a Russian reply, never a crash; what is kept is
stored under the data folder whatever the name says."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from storage.models import Attachment
from tests.props_state import assert_no_crash, snapshot
from tests.walk import PDF, PNG, started

NAMES = st.one_of(
    st.text(max_size=80),
    st.text(max_size=40).map(lambda s: f"{s}.pdf"),
    st.sampled_from(
        [
            "../../etc/passwd.pdf",
            "/abs/path/приказ.pdf",
            "C:\\Windows\\x.docx",
            "a" * 300 + ".pdf",
            "файл.PDF",
            ".pdf",
            "приказ.exe",
            "скан.jpg",
            "архив.zip",
            "nul\x00byte.pdf",
            "\u202eFDP.exe",
            "con.pdf",
        ]
    ),
)
CONTENT = st.one_of(
    st.sampled_from([PDF, PNG, b"", b"PK\x03\x04broken zip", b"MZ\x90\x00 exe"]),
    st.binary(max_size=300),
)
MIME = st.one_of(st.none(), st.sampled_from(["application/pdf", "image/png", "x/y", ""]))


@pytest.fixture
async def at_documents(services, region):
    _harness, user = await started(services, region, past_counts=True)
    await user.click("Да")
    user.expect("файл")
    return user


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=NAMES, content=CONTENT, mime=MIME, caption=st.one_of(st.none(), st.text(max_size=30)))
@example(name="приказ.pdf", content=PDF, mime="application/pdf", caption=None)
@example(name="../../etc/passwd.pdf", content=PDF, mime=None, caption=None)
async def test_a_random_file_gets_a_russian_reply_never_a_crash(
    services, at_documents, name, content, mime, caption
):
    before = await snapshot(services.sessions)
    await at_documents.send_document(content, name, mime or None, caption=caption or None)
    texts = await assert_no_crash(services.sessions, before)
    assert texts and at_documents.texts(), name
    after = await snapshot(services.sessions)
    if content == PDF and name in ("приказ.pdf", "../../etc/passwd.pdf"):  # a good file is kept
        assert after.counts["attachments"] == before.counts["attachments"] + 1
    root = Path(services.settings.storage.data_dir).resolve()
    async with services.sessions() as session:
        for attachment in await session.scalars(select(Attachment)):
            if attachment.storage_path:
                stored = services.files.absolute(attachment.storage_path).resolve()
                assert stored.is_relative_to(root) and stored.is_file(), attachment.storage_path
