"""Backup and restore: the database and the documents in one .tar.gz with a manifest.

The database snapshot is consistent: SQLite's online backup API copies one committed state
while the bot keeps running; on PostgreSQL the row counts are read in a REPEATABLE READ
transaction whose snapshot ``pg_dump --snapshot`` dumps, so counts and dump match exactly.
The documents are copied after the database, so every file the snapshot refers to is
already on disk. The manifest records versions, the alembic revision, row counts per table
and the sha256 of every file; restore checks the archive against it before it touches
anything, and the restored database and files against it afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from sqlalchemy.engine import URL, make_url

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
PG_MEMBER = "database.pgdump"
FILES_PREFIX = "files/"
PG_DUMP = os.environ.get("PG_DUMP", "pg_dump")
PG_RESTORE = os.environ.get("PG_RESTORE", "pg_restore")
PSQL = os.environ.get("PSQL", "psql")


class BackupError(Exception):
    """A Russian message for the operator; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Outcome:
    archive: Path
    tables: int
    rows: int
    files: int


# --- helpers ----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _documents(root: Path) -> dict[str, dict]:
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): {"sha256": _sha256(path), "size": path.stat().st_size}
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shnor-bot")
    except PackageNotFoundError:
        return "unknown"


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("DATABASE_URL указывает на базу в памяти: сохранять нечего.", 2)
    return Path(url.database)


def _sqlite_counts(connection: sqlite3.Connection) -> dict[str, int]:
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return {n: connection.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def _revision(counts: dict[str, int], read) -> str | None:
    if not counts.get("alembic_version"):
        return None
    return read("SELECT version_num FROM alembic_version")


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password (it goes in PGPASSWORD, never on a command line)."""
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BackupError(
            f"Не найдена программа {command[0]}: установите клиент PostgreSQL "
            "(пакет postgresql-client) той же или более новой версии, что и сервер.",
            2,
        ) from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise BackupError(f"{what}: {command[0]} завершился с ошибкой: {' / '.join(detail)}")


async def _pg_connect(url: URL):
    import asyncpg

    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        return await asyncpg.connect(plain)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupError(
            f"Не удалось подключиться к PostgreSQL ({type(exc).__name__}). Проверьте "
            "DATABASE_URL и что сервер запущен, затем повторите.",
            2,
        ) from None


async def _pg_counts(connection) -> dict[str, int]:
    names = [
        row["tablename"]
        for row in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        )
    ]
    return {n: int(await connection.fetchval(f'SELECT count(*) FROM "{n}"')) for n in names}


# --- backup -----------------------------------------------------------------------------------


def _snapshot_sqlite(url: URL, work: Path) -> tuple[Path, dict]:
    source_path = _sqlite_path(url)
    if not source_path.is_file():
        raise BackupError(f"Файла базы {source_path} нет: сохранять нечего.", 2)
    copy = work / SQLITE_MEMBER
    with (
        contextlib.closing(sqlite3.connect(source_path)) as source,
        contextlib.closing(sqlite3.connect(copy)) as target,
    ):
        source.backup(target)
    with contextlib.closing(sqlite3.connect(copy)) as snapshot:
        counts = _sqlite_counts(snapshot)
        revision = _revision(counts, lambda sql: snapshot.execute(sql).fetchone()[0])
    return copy, {
        "dialect": "sqlite",
        "server_version": sqlite3.sqlite_version,
        "alembic_revision": revision,
        "tables": counts,
    }


async def _snapshot_postgres(url: URL, work: Path) -> tuple[Path, dict]:
    dump = work / PG_MEMBER
    connection = await _pg_connect(url)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await connection.fetchval("SELECT pg_export_snapshot()")
            counts = await _pg_counts(connection)
            revision = None
            if counts.get("alembic_version"):
                revision = await connection.fetchval("SELECT version_num FROM alembic_version")
            server = await connection.fetchval("SHOW server_version")
            target, env = _libpq(url)
            command = [PG_DUMP, "-Fc", "--no-owner", f"--snapshot={snapshot}", "-f", str(dump)]
            await _in_thread(_run, [*command, "--dbname", target], env, "Резервная копия")
    finally:
        await connection.close()
    return dump, {
        "dialect": "postgresql",
        "server_version": server,
        "alembic_revision": revision,
        "tables": counts,
    }


async def _in_thread(function, *args):
    import asyncio

    return await asyncio.to_thread(function, *args)


def _archive_name(now: datetime) -> str:
    return f"shnor-backup-{now:%Y%m%d-%H%M%S}.tar.gz"


async def backup(database_url: str, files_dir: Path, to: Path) -> Outcome:
    url = make_url(database_url)
    now = datetime.now(UTC)
    try:
        to.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise BackupError(f"Не удалось создать папку {to}: укажите другую в --to.", 2) from None
    archive = to / _archive_name(now)
    with tempfile.TemporaryDirectory(dir=to, prefix=".backup-") as temporary:
        work = Path(temporary)
        if _is_sqlite(url):
            dump, database = await _in_thread(_snapshot_sqlite, url, work)
        else:
            dump, database = await _snapshot_postgres(url, work)
        database["file"] = {"name": dump.name, "sha256": _sha256(dump)}
        files = await _in_thread(_documents, files_dir)  # after the database: see the docstring
        manifest = {
            "format": FORMAT,
            "created_at": now.isoformat(),
            "versions": {
                "app": _app_version(),
                "python": platform.python_version(),
                "database": database["server_version"],
            },
            "database": database,
            "files": files,
        }
        partial = work / "archive.tar.gz"
        await _in_thread(_write_archive, partial, manifest, dump, files_dir, files)
        os.replace(partial, archive)
    tables = database["tables"]
    return Outcome(archive, len(tables), sum(tables.values()), len(files))


def _write_archive(path: Path, manifest: dict, dump: Path, root: Path, files: dict) -> None:
    with tarfile.open(path, "w:gz") as tar:
        data = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        info.mtime = int(datetime.now(UTC).timestamp())
        tar.addfile(info, io.BytesIO(data))
        tar.add(dump, arcname=dump.name)
        for relative in files:
            tar.add(root / relative, arcname=FILES_PREFIX + relative)


# --- restore ----------------------------------------------------------------------------------

BROKEN = (
    "Архив {name} повреждён или это не резервная копия бота ({why}). Ничего не изменено. "
    "Возьмите другую копию ({command} backup делает новую)."
)


def _broken(archive: Path, why: str) -> BackupError:
    from bot import COMMAND

    return BackupError(BROKEN.format(name=archive.name, why=why, command=COMMAND), 2)


def _safe(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and name == path.as_posix()


@contextlib.contextmanager
def _unpacked(archive: Path, work: Path) -> Iterator[dict]:
    """Extract and check every member against the manifest; yields the manifest."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            if MANIFEST not in members:
                raise _broken(archive, "нет manifest.json")
            manifest = json.loads(tar.extractfile(members[MANIFEST]).read())  # type: ignore[union-attr]
            if manifest.get("format") != FORMAT:
                raise _broken(archive, f"неизвестный формат {manifest.get('format')!r}")
            wanted = {manifest["database"]["file"]["name"]: manifest["database"]["file"]}
            wanted.update({FILES_PREFIX + k: v for k, v in manifest["files"].items()})
            for name, expected in wanted.items():
                member = members.get(name)
                if member is None or not member.isfile() or not _safe(name):
                    raise _broken(archive, f"нет файла {name}")
                target = work / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as source, target.open("wb") as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(source, out)
                if _sha256(target) != expected["sha256"]:
                    raise _broken(archive, f"не совпадает контрольная сумма {name}")
    except FileNotFoundError:
        raise BackupError(f"Файла {archive} нет. Укажите путь к архиву .tar.gz.", 2) from None
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise _broken(archive, type(exc).__name__) from None
    yield manifest


def _differences(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    return [
        f"{table}: в копии {expected.get(table)}, после восстановления {actual.get(table)}"
        for table in sorted(set(expected) | set(actual))
        if expected.get(table) != actual.get(table)
    ]


def _has_rows(counts: dict[str, int]) -> bool:
    return any(n for table, n in counts.items() if table != "alembic_version")


def _restore_sqlite(url: URL, snapshot: Path, force: bool) -> dict[str, int]:
    target_path = _sqlite_path(url)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(target_path)) as target:
        if _has_rows(_sqlite_counts(target)) and not force:
            raise _not_empty()
        with contextlib.closing(sqlite3.connect(snapshot)) as source:
            source.backup(target)  # replaces the whole database, under its write lock
        return _sqlite_counts(target)


def _not_empty() -> BackupError:
    return BackupError(
        "База данных не пуста: восстановление заменит её содержимое. Остановите бота и "
        "повторите с --force, если это и нужно. Ничего не изменено.",
        2,
    )


async def _restore_postgres(url: URL, dump: Path, force: bool) -> dict[str, int]:
    connection = await _pg_connect(url)
    try:
        if _has_rows(await _pg_counts(connection)) and not force:
            raise _not_empty()
    finally:
        await connection.close()
    target, env = _libpq(url)
    # The dump as SQL, then in ONE transaction: drop the schema (tables of a later migration
    # too), recreate it from the copy. A failure leaves the old data as it was.
    script = dump.with_suffix(".sql")
    restore = [PG_RESTORE, "--no-owner", "--no-acl", "--exit-on-error", "-f", str(script)]
    await _in_thread(_run, [*restore, str(dump)], env, "Восстановление")
    load = [PSQL, "-X", "-q", "--single-transaction", "-v", "ON_ERROR_STOP=1", "--dbname", target]
    load += ["-c", "DROP SCHEMA IF EXISTS public CASCADE", "-c", "CREATE SCHEMA public"]
    await _in_thread(_run, [*load, "-f", str(script)], env, "Восстановление")
    connection = await _pg_connect(url)
    try:
        return await _pg_counts(connection)
    finally:
        await connection.close()


def _check_documents(files_dir: Path, force: bool) -> None:
    if files_dir.is_dir() and any(files_dir.iterdir()) and not force:
        raise BackupError(
            f"Папка документов {files_dir} не пуста: восстановление заменит её. "
            "Повторите с --force, если это и нужно. Ничего не изменено.",
            2,
        )


def _swap_documents(unpacked: Path, files_dir: Path) -> None:
    files_dir.parent.mkdir(parents=True, exist_ok=True)
    old = files_dir.with_name(files_dir.name + ".before-restore")
    shutil.rmtree(old, ignore_errors=True)
    if files_dir.exists():
        files_dir.rename(old)
    if unpacked.is_dir():
        shutil.move(str(unpacked), files_dir)
    else:
        files_dir.mkdir()
    shutil.rmtree(old, ignore_errors=True)


async def restore(database_url: str, files_dir: Path, archive: Path, force: bool) -> Outcome:
    url = make_url(database_url)
    files_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=files_dir.parent, prefix=".restore-") as temporary:
        work = Path(temporary)
        with _unpacked(archive, work) as manifest:
            database = manifest["database"]
            if database["dialect"] != ("sqlite" if _is_sqlite(url) else "postgresql"):
                raise BackupError(
                    f"Копия сделана из базы {database['dialect']}, а DATABASE_URL указывает на "
                    f"{url.get_backend_name()}. Ничего не изменено.",
                    2,
                )
            _check_documents(files_dir, force)
            dump = work / database["file"]["name"]
            if _is_sqlite(url):
                counts = await _in_thread(_restore_sqlite, url, dump, force)
            else:
                counts = await _restore_postgres(url, dump, force)
            await _in_thread(_swap_documents, work / "files", files_dir)
    problems = _differences(database["tables"], counts)
    restored = await _in_thread(_documents, files_dir)
    expected = manifest["files"]
    changed = [n for n in set(restored) | set(expected) if restored.get(n) != expected.get(n)]
    if changed:
        problems.append(f"документы не совпадают с копией: {len(changed)}")
    if problems:
        raise BackupError(
            "Восстановление завершилось, но данные не совпадают с копией: "
            + "; ".join(problems[:10])
            + ". Не запускайте бота; повторите восстановление с --force."
        )
    return Outcome(archive, len(counts), sum(counts.values()), len(restored))
