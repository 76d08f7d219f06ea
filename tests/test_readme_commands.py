"""Every command the README shows works as written, through scripts/dev.py as a user runs it."""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEV = "python3 scripts/dev.py"
PACKAGES = ("bot", "handlers", "forms", "scheduler", "exports", "storage", "roadmaps")
SUBCOMMAND = re.compile(r"[a-z][a-z-]*")

pytestmark = pytest.mark.skipif(
    not (ROOT / ".venv").exists(), reason="scripts/dev.py has not set up .venv here"
)


def load_dev():
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def words(line: str) -> list[str]:
    """The words of a command line, without the comment and the [optional] brackets."""
    return shlex.split(line.replace("[", " ").replace("]", " "), comments=True)


def dev(*args: str, cwd: Path = ROOT, **kwargs) -> subprocess.CompletedProcess[str]:
    python = shutil.which("python3") or sys.executable  # the python3 a user types
    return subprocess.run(
        [python, str(ROOT / "scripts" / "dev.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        **kwargs,
    )


def test_the_readme_shows_only_commands_that_work_from_a_clone():
    lines = readme_commands()
    assert sum(line.startswith(DEV) for line in lines) >= 15
    for line in lines:
        if line.startswith(".venv/bin/python "):
            assert (ROOT / words(line)[1]).is_file(), line
        else:
            assert line.startswith(DEV), f"not the documented route: {line}"


def test_every_readme_command_answers_help_with_its_options():
    seen: set[tuple[str, ...]] = set()
    for line in readme_commands():
        if not line.startswith(DEV):
            continue
        args = words(line)[2:]
        path = []
        for word in args:
            if not SUBCOMMAND.fullmatch(word):
                break
            path.append(word)
        options = {word.split("=")[0] for word in args if word.startswith("--")}
        key = (*path, *sorted(options))
        if key in seen:
            continue
        seen.add(key)
        result = dev(*path, "--help")
        assert result.returncode == 0, (line, result.stderr)
        assert "Traceback" not in result.stderr
        for option in options:
            assert option in result.stdout, f"{line}: {option} is not in `{' '.join(path)} --help`"


def test_commands_run_in_the_callers_directory(tmp_path):
    result = dev("import-schools", "шаблон.xlsx", "--template", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "шаблон.xlsx").is_file()
    assert "Usage: python3 scripts/dev.py" in dev("campaign", "--help").stdout


def test_the_entry_point_is_installed():
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "shnor-bot"), "forms", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "list" in result.stdout, result.stderr


def test_python_m_bot_outside_venv_says_what_to_run(tmp_path):
    # -S: no site-packages, like a system python3 without the dependencies.
    result = subprocess.run(
        [sys.executable, "-S", "-m", "bot", "campaign", "list"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert f"{DEV} campaign list" in result.stderr


def test_no_hint_names_a_command_that_fails_outside_venv():
    offenders = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
                and node.body
                and isinstance(node.body[0], ast.Expr)
            }
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and id(node) not in docstrings
                    and re.search(r"python3? -m bot \w", node.value)
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders


def test_the_lock_pins_every_dependency_once():
    dev_script = load_dev()
    assert dev_script.unlocked_requirements() == []
    pins = [
        line.split("==")[0].lower()
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    ]
    assert len(pins) == len(set(pins))
    assert {"aiohttp", "pydantic", "aiogram", "vkbottle"} <= set(pins)


def test_a_changed_lock_or_pyproject_reinstalls(tmp_path, monkeypatch):
    dev_script = load_dev()
    lock, pyproject = tmp_path / "constraints.txt", tmp_path / "pyproject.toml"
    lock.write_text("aiohttp==3.14.5\n")
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["aiohttp>=3"]\n')
    monkeypatch.setattr(dev_script, "LOCK", lock)
    monkeypatch.setattr(dev_script, "PYPROJECT", pyproject)
    before = dev_script.install_digest()
    lock.write_text("aiohttp==3.14.6\n")
    after_lock = dev_script.install_digest()
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["aiohttp>=3", "typer"]\n')
    assert len({before, after_lock, dev_script.install_digest()}) == 3
    assert dev_script.unlocked_requirements() == ["typer"]


def test_ci_runs_exactly_the_readme_test_command():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    test_line = next(line for line in readme_commands() if words(line)[2:3] == ["test"])
    assert ci[-1].strip() == " ".join(words(test_line))
