"""`python -m bot backup` / `restore` as an operator runs them, on SQLite and PostgreSQL:
a round trip with documents gives the same rows and files; a non-empty database is not
overwritten without --force; a broken or tampered archive is refused and nothing changes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import delete, func, inspect, select, text

from bot.app import create_services
from bot.config import load_settings
from storage.models import Invite, School
from tests.conftest import seed_region
from tests.pg import POSTGRES_URL, settings_on_both_databases, temporary_database
from tests.runtime import ROOT
from tests.walk import PDF

settings = settings_on_both_databases()


def bot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    variables = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    for name in ("DATA_DIR", "DATABASE_URL"):
        if os.environ.get(name):
            variables[name] = os.environ[name]
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env={**variables, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


async def snapshot(settings) -> tuple[dict[str, int], dict[str, str]]:
    """Row counts of a few tables and the sha256 of every document."""
    services = await create_services(settings, migrate=False)
    try:
        async with services.sessions() as session:
            counts = {
                model.__tablename__: int(
                    await session.scalar(select(func.count()).select_from(model)) or 0
                )
                for model in (School, Invite)
            }
    finally:
        await services.close()
    root = settings.storage.files_dir
    files = {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    return counts, files


@pytest.fixture
async def seeded(settings, tmp_path):
    services = await create_services(settings)
    try:
        await seed_region(services)
        for name, body in (("план.pdf", PDF), ("отчёт.pdf", PDF + b"%% second\n")):
            source = tmp_path / name
            source.write_bytes(body)
            services.files.put(source, name)
    finally:
        await services.close()
    return settings


def only_archive(folder: Path) -> Path:
    archives = list(folder.glob("shnor-backup-*.tar.gz"))
    assert len(archives) == 1, archives
    return archives[0]


async def test_backup_and_restore_round_trip_with_documents(seeded, tmp_path):
    before = await snapshot(seeded)
    assert before[0]["schools"] > 0 and len(before[1]) == 2

    made = bot("backup", "--to", str(tmp_path / "backups"))
    assert made.returncode == 0, made.stderr
    assert "Резервная копия готова" in made.stdout and "документов 2" in made.stdout
    archive = only_archive(tmp_path / "backups")
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest["database"]["alembic_revision"]
    assert manifest["database"]["tables"]["schools"] == before[0]["schools"]
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == before[1]

    refused = bot("restore", str(archive))
    assert refused.returncode == 2
    assert "не пуста" in refused.stderr and "--force" in refused.stderr

    # Damage: rows deleted, a document lost, a stray file added.
    services = await create_services(seeded, migrate=False)
    try:
        async with services.sessions() as session:
            await session.execute(delete(Invite))
            await session.commit()
    finally:
        await services.close()
    files_dir = seeded.storage.files_dir
    next(p for p in files_dir.rglob("*") if p.is_file()).unlink()
    (files_dir / "stray.txt").write_text("лишний")
    assert await snapshot(seeded) != before

    restored = bot("restore", str(archive), "--force")
    assert restored.returncode == 0, restored.stderr
    assert "всё совпадает" in restored.stdout
    assert await snapshot(seeded) == before


async def test_restore_into_an_empty_place_needs_no_force(seeded, tmp_path, monkeypatch):
    """A new server: the bot already created (migrated) its empty database."""
    before = await snapshot(seeded)
    assert bot("backup", "--to", str(tmp_path / "b")).returncode == 0
    archive = only_archive(tmp_path / "b")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "fresh"))
    if POSTGRES_URL and os.environ.get("DATABASE_URL"):
        async with temporary_database(migrated=True) as empty:
            monkeypatch.setenv("DATABASE_URL", empty)
            done = bot("restore", str(archive))
            assert done.returncode == 0, done.stderr
            assert await snapshot(load_settings(env_file=None)) == before
        return
    assert bot("db", "upgrade").returncode == 0
    done = bot("restore", str(archive))
    assert done.returncode == 0, done.stderr
    assert await snapshot(load_settings(env_file=None)) == before


def _rewrite(archive: Path, target: Path, change) -> None:
    """Copy the archive member by member, letting ``change`` alter a member's bytes."""
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for member in source.getmembers():
            data = change(member.name, source.extractfile(member).read())
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))


async def test_broken_or_tampered_archive_is_refused_and_nothing_changes(seeded, tmp_path):
    assert bot("backup", "--to", str(tmp_path / "b")).returncode == 0
    archive = only_archive(tmp_path / "b")
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    not_gzip = tmp_path / "notes.tar.gz"
    not_gzip.write_text("это не архив")
    tampered = tmp_path / "tampered.tar.gz"
    _rewrite(
        archive,
        tampered,
        lambda name, data: data + b"x" if name.startswith("files/") else data,
    )
    no_manifest = tmp_path / "no-manifest.tar.gz"
    with tarfile.open(no_manifest, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    assert gzip.decompress(tampered.read_bytes())  # a valid gzip, only the content is wrong

    # Damage the live data first: a refused restore must leave it exactly as it is.
    services = await create_services(seeded, migrate=False)
    try:
        async with services.sessions() as session:
            await session.execute(delete(Invite))
            await session.commit()
    finally:
        await services.close()
    damaged = await snapshot(seeded)
    for bad, why in (
        (truncated, "повреждён"),
        (not_gzip, "повреждён"),
        (tampered, "контрольная сумма"),
        (no_manifest, "manifest.json"),
        (tmp_path / "missing.tar.gz", "нет"),
    ):
        result = bot("restore", str(bad), "--force")
        assert result.returncode == 2, (bad, result.stderr)
        assert why in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert await snapshot(seeded) == damaged


async def test_restore_that_does_not_match_the_manifest_says_so(seeded, tmp_path):
    assert bot("backup", "--to", str(tmp_path / "b")).returncode == 0
    archive = only_archive(tmp_path / "b")

    def one_school_more(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["database"]["tables"]["schools"] += 1
        return json.dumps(manifest).encode()

    edited = tmp_path / "edited.tar.gz"
    _rewrite(archive, edited, one_school_more)
    result = bot("restore", str(edited), "--force")
    assert result.returncode == 1
    assert "не совпадают" in result.stderr and "schools" in result.stderr
    assert "Не запускайте бота" in result.stderr


async def test_restore_replaces_a_newer_schema_whole(seeded, tmp_path):
    """The target has a table the copy does not know (a later migration): after restore the
    database is exactly the copy, so the next `db upgrade` starts from the copy's revision."""
    before = await snapshot(seeded)
    assert bot("backup", "--to", str(tmp_path / "b")).returncode == 0
    archive = only_archive(tmp_path / "b")
    services = await create_services(seeded, migrate=False)
    try:
        async with services.sessions() as session:
            await session.execute(text("CREATE TABLE later_feature (id integer)"))
            await session.execute(text("INSERT INTO later_feature VALUES (1)"))
            await session.commit()
    finally:
        await services.close()
    done = bot("restore", str(archive), "--force")
    assert done.returncode == 0, done.stderr
    assert await snapshot(seeded) == before
    services = await create_services(seeded, migrate=False)
    try:
        async with services.sessions() as session:
            tables = await session.run_sync(lambda s: inspect(s.connection()).get_table_names())
    finally:
        await services.close()
    assert "later_feature" not in tables and "schools" in tables
    assert bot("db", "upgrade").returncode == 0


async def test_backup_while_the_bot_writes_is_one_consistent_moment(seeded, tmp_path, monkeypatch):
    """Rows are committed all through the backup: the counts in the manifest are the rows in
    the snapshot, so restoring it elsewhere matches the manifest exactly."""
    import asyncio

    from storage.models import Region

    services = await create_services(seeded, migrate=False)
    written = 0
    stop = asyncio.Event()

    async def writer() -> None:
        nonlocal written
        while not stop.is_set():
            async with services.sessions() as session:
                session.add(Region(name=f"Регион {written}"))
                await session.commit()
            written += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(writer())
    try:
        await asyncio.sleep(0.3)
        made = await asyncio.to_thread(bot, "backup", "--to", str(tmp_path / "b"))
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await task
        await services.close()
    assert made.returncode == 0, made.stderr
    archive = only_archive(tmp_path / "b")
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    in_copy = manifest["database"]["tables"]["regions"]
    assert 1 < in_copy < written + 1  # writes went on before and after the snapshot

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "elsewhere"))
    if POSTGRES_URL and os.environ.get("DATABASE_URL"):
        async with temporary_database(migrated=True) as empty:
            monkeypatch.setenv("DATABASE_URL", empty)
            done = bot("restore", str(archive))
    else:
        done = bot("restore", str(archive))
    assert done.returncode == 0, done.stderr
