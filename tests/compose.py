"""Reading the deployment files as Docker Compose, the Docker builder and systemd would.

No Docker engine is needed: docker-compose.yml is parsed with PyYAML (merge keys included),
``${VAR}`` references are interpolated with Compose's rules from the env file, and a service's
container environment is the image's ``ENV``, then ``env_file``, then ``environment``. The
live test (tests/test_compose_stack.py) runs the services' commands as local processes with
what these helpers compute.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

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
