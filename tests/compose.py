"""Reading the deployment files as Docker Compose, the Docker builder and systemd would.

No Docker engine is needed: docker-compose.yml is parsed with PyYAML (merge keys included),
``${VAR}`` references are interpolated with Compose's rules from the env file, and a service's
container environment is the image's ``ENV``, then ``env_file``, then ``environment``. The
live test (tests/test_compose_stack.py) runs the services' commands as local processes with
what these helpers compute.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import yaml
from dotenv import dotenv_values
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from bot.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "compose.env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SYSTEMD_UNIT = ROOT / "deploy" / "shnor-bot.service"
README = ROOT / "README.md"

# $$, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt},
# ${NAME+alt} and $NAME (https://docs.docker.com/compose/how-tos/environment-variables/…)
_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(Exception):
    """A required variable (``${NAME:?…}``) is missing, as `docker compose` would refuse."""


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def env_example() -> dict[str, str]:
    """The values of deploy/compose.env.example, as the `.env` copied from it holds them."""
    return {name: value or "" for name, value in dotenv_values(ENV_EXAMPLE).items()}


def env_example_offered() -> dict[str, str]:
    """The variables the example offers commented out (``# VK_TOKEN=``), with their values."""
    offered = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if match := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip()):
            offered[match.group(1)] = match.group(2).strip()
    return offered


def env_example_names() -> set[str]:
    """Every variable the example sets or offers commented out."""
    return set(env_example()) | set(env_example_offered())


def bind_mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Container path → host path of the service's bind mounts (short syntax)."""
    mounts = {}
    for volume in service.get("volumes") or []:
        source, _, rest = str(volume).partition(":")
        if source.startswith((".", "/")):
            mounts[rest.partition(":")[0]] = source
    return mounts


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, Mapping):
        return [s for key, value in node.items() for s in (*_strings(key), *_strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def references(node: Any) -> list[tuple[str, str | None, str]]:
    """(name, operator, argument) of every ``$`` reference in the strings of ``node``."""
    found = []
    for text in _strings(node):
        for match in _REFERENCE.finditer(text):
            if match.group("escaped"):
                continue
            name = match.group("braced") or match.group("plain")
            found.append((name, match.group("op"), match.group("arg") or ""))
    return found


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """``node`` with every reference replaced as Compose does from ``env``."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        empty = not value
        if op in (":-", "-"):
            return arg if (value is None or (op == ":-" and empty)) else value
        if op in (":?", "?"):
            if value is None or (op == ":?" and empty):
                raise InterpolationError(f"{name}: {arg or 'required'}")
            return value
        if op in (":+", "+"):
            return "" if (value is None or (op == ":+" and empty)) else arg
        return value or ""

    if isinstance(node, str):
        return _REFERENCE.sub(replace, node)
    if isinstance(node, Mapping):
        return {interpolate(k, env): interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    return node


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment:`` (a mapping or a list of NAME=value) as strings."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {
        str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in raw.items()
    }


def env_files(service: Mapping[str, Any]) -> list[str]:
    raw = service.get("env_file") or []
    items = raw if isinstance(raw, list) else [raw]
    return [item["path"] if isinstance(item, Mapping) else str(item) for item in items]


def dockerfile_env() -> dict[str, str]:
    """The image's ``ENV`` (``ENV NAME=value …`` with line continuations)."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().upper().startswith("ENV "):
            for word in shlex.split(line.strip()[4:]):
                name, _, value = word.partition("=")
                found[name] = value
    return found


def container_env(service: Mapping[str, Any], files: Mapping[str, Mapping[str, str]]) -> dict:
    """What the container's process sees: image ENV < env_file < environment. ``files`` maps
    each env_file path to its values; ``service`` is already interpolated."""
    env = dockerfile_env()
    for path in env_files(service):
        env.update(files[path])
    env.update(environment(service))
    return env


def healthcheck_argv(service: Mapping[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    if test[0] == "CMD":
        return list(test[1:])
    assert test[0] == "CMD-SHELL", test
    return ["/bin/sh", "-c", test[1]]


def seconds(duration: str | int | float) -> float:
    """A Compose duration: ``30s``, ``1m30s``, ``500ms`` (a bare number is seconds)."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(a + b for a, b in parts) == duration, duration
    return sum(float(amount) * units[unit] for amount, unit in parts)


# --- the image ---------------------------------------------------------------------------------


def dockerfile_copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY, relative to the build context."""
    copies = []
    for line in DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        words = shlex.split(line.strip())
        if words[:1] == ["COPY"]:
            args = [w for w in words[1:] if not w.startswith("--")]
            copies.append((args[:-1], args[-1]))
    return copies


def local_top_level() -> set[str]:
    """Top-level packages and modules of the project folder (not tests, bench, scripts)."""
    names = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    names |= {p.stem for p in ROOT.glob("*.py")}
    return names - {"tests", "bench", "scripts"}


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_top_level(start: str = "bot") -> set[str]:
    """Top-level project packages reached from ``start`` by imports, lazy ones included."""
    local = local_top_level()
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        if path is None:
            continue
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        if path.name == "__init__.py":  # a package brings its modules (pkgutil, lazy loaders)
            todo += [f"{module}.{p.stem}" for p in path.parent.glob("*.py") if p.stem != "__init__"]
            todo += [
                f"{module}.{p.name}" for p in path.parent.iterdir() if (p / "__init__.py").is_file()
            ]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names if alias.name.split(".")[0] in local]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                if target.split(".")[0] in local:
                    todo.append(target)
                    todo += [f"{target}.{alias.name}" for alias in node.names]
    return {module.split(".")[0] for module in seen if _module_file(module)}


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex on the path."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):
                out = out[:-2] + "(?:.*/)?"
                i += 1
            continue
        char = pattern[i]
        out += "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)
        i += 1
    return re.compile(out + "(?:/.*)?")  # a matched folder excludes everything in it


def dockerignored(path: str) -> bool:
    """Whether the builder leaves ``path`` (relative, with /) out of the build context."""
    excluded = False
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if _ignore_regex(pattern).fullmatch(path):
            excluded = not negate
    return excluded


# --- systemd -----------------------------------------------------------------------------------


def unit_directives(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file, every value of a repeated key kept in order."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def readme_section(title: str) -> str:
    """The text of the README section headed ``title`` up to the next heading of its level."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^(#+) {re.escape(title)}\s*$", text, re.M)
    assert match, f"README has no section «{title}»"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def shell_lines(section: str) -> list[str]:
    """The commands of the section's ```shell blocks, comments stripped."""
    lines = []
    for block in re.findall(r"```(?:shell|bash|sh)\n(.*?)```", section, re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


def localize_mounts(env: Mapping[str, str], service: Mapping[str, Any], project: Path) -> dict:
    """``env`` with paths inside the service's bind mounts mapped to the host folders, the
    project folder (beside docker-compose.yml) being ``project``."""
    env = dict(env)
    for inside, host in bind_mounts(service).items():
        local = str(project / host.removeprefix("./")) if host.startswith("./") else host
        for name, value in env.items():
            if value == inside or value.startswith(f"{inside.rstrip('/')}/"):
                env[name] = local + value[len(inside) :]
    return env


# --- running the services as local processes ------------------------------------------------


def load_with(env: dict[str, str], tmp_path: Path) -> Settings:
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
    saved = dict(os.environ)
    os.environ.clear()
    try:
        return load_settings(env_file=env_file)
    finally:
        os.environ.update(saved)


def ignored_by_settings(names: set[str], tmp_path: Path) -> set[str]:
    """The names no settings section of the real ``Settings`` takes: each section is loaded
    from an env file with all of them, forbidding extra keys; a name extra to all is
    ignored by the app's settings."""
    env_file = tmp_path / "names.env"
    env_file.write_text("".join(f"{name}=1\n" for name in sorted(names)), encoding="utf-8")
    ignored = {name.lower() for name in names}
    for field in Settings.model_fields.values():
        section = field.annotation
        strict = type(
            section.__name__,
            (section,),
            {"model_config": {**section.model_config, "extra": "forbid"}},
        )
        try:
            strict(_env_file=env_file)
            extra: set[str] = set()
        except ValidationError as exc:
            extra = {str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden"}
        ignored &= extra
    return {name.upper() for name in ignored}


def localize(
    env: dict[str, str],
    postgres: dict,
    *,
    database_url: str,
    redis_url: str,
    data_dir: Path,
    port: int,
) -> dict[str, str]:
    """The container's environment with the compose hostnames mapped to this machine:
    postgres to ``database_url`` (the URL's user, password and database must be the postgres
    service's), redis to ``redis_url``, the documents volume to ``data_dir``, the webhook
    server to 127.0.0.1:``port``."""
    env = dict(env)
    url = make_url(env["DATABASE_URL"])
    wanted = environment(postgres)
    assert (url.host, url.port, url.database) == ("postgres", 5432, wanted["POSTGRES_DB"])
    assert (url.username, url.password) == (wanted["POSTGRES_USER"], wanted["POSTGRES_PASSWORD"])
    env["DATABASE_URL"] = database_url
    redis = urlsplit(env["REDIS_URL"])
    assert (redis.hostname, redis.port) == ("redis", 6379)
    env["REDIS_URL"] = redis_url
    assert env["DATA_DIR"] == "/data"
    env["DATA_DIR"] = str(data_dir)
    assert env["WEBHOOK_LISTEN"].startswith("0.0.0.0:")
    env["WEBHOOK_LISTEN"] = f"127.0.0.1:{port}"
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(data_dir.parent), **env}


def argv_of(command: list[str]) -> list[str]:
    assert command[:3] == ["python", "-m", "bot"], command
    return command[3:]


async def healthy(argv: list[str], container_port: str, port: int, timeout: float) -> bool:
    """The compose healthcheck command itself, on the replica's local port; like Docker, a
    check still running after ``timeout`` counts as failed."""
    local = [word.replace(f"127.0.0.1:{container_port}/", f"127.0.0.1:{port}/") for word in argv]
    assert local != argv
    if local[0] == "python":
        local[0] = sys.executable
    check = await asyncio.create_subprocess_exec(
        *local, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        return await asyncio.wait_for(check.wait(), timeout) == 0
    except TimeoutError:
        check.kill()
        await check.wait()
        return False


async def wait_for(check, processes, timeout: float, what: str, logs=()) -> None:
    """Until ``check()``; a worker that exits meanwhile fails it with its log's tail."""
    deadline = time.monotonic() + timeout
    while not await check():
        for i, process in enumerate(processes):
            if process.returncode is not None:
                tail = Path(logs[i].name).read_text(errors="replace")[-3000:] if logs else ""
                raise AssertionError(f"{what}: worker {i} exited with {process.returncode}\n{tail}")
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout} s"
        await asyncio.sleep(0.2)


async def migrated_tables(url: str) -> set[str]:
    connection = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        return {row["tablename"] for row in rows}
    finally:
        await connection.close()


async def local_socket() -> tuple[Path, int]:
    """The unix socket folder and port of the local PostgreSQL of TEST_POSTGRES_URL."""
    url = make_url(str(os.environ.get("TEST_POSTGRES_URL"))).set(drivername="postgresql")
    assert url.host in ("127.0.0.1", "localhost"), "the check needs a PostgreSQL on this machine"
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        folders = await connection.fetchval("SHOW unix_socket_directories")
        port = int(await connection.fetchval("SHOW port"))
    finally:
        await connection.close()
    for folder in (Path(f.strip()) for f in folders.split(",") if f.strip()):
        if (folder / f".s.PGSQL.{port}").exists():
            return folder, port
    raise AssertionError(f"no unix socket of the local PostgreSQL in {folders}")
