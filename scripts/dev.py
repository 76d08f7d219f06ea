#!/usr/bin/env python3
"""Set up .venv from the lock and run the bot, its commands or the tests.

    python3 scripts/dev.py run             # install, migrate, start (console when no BOT_TOKEN)
    python3 scripts/dev.py console         # the questionnaire in the terminal (demo DB)
    python3 scripts/dev.py test [ARGS]     # install with test extras, ruff, pytest ARGS
                                           # (no ARGS: the whole suite on every core)
    python3 scripts/dev.py lock [--upgrade | --upgrade-package NAME]
                                           # regenerate constraints.txt from pyproject.toml
    python3 scripts/dev.py COMMAND …       # any bot command, e.g. campaign list, --help

Dependencies are installed with the pins in constraints.txt (`pip install -c`), so every
machine gets the versions CI ran. Only the Python standard library is used here, so it
works on a fresh machine.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "constraints.txt"
PROG = "python3 scripts/dev.py"
LOCK_TOOL = "uv>=0.5,<1"
LOCK_EXTRAS = ("test",)  # the lock pins these extras too, so `test` installs from it
OWN_COMMANDS = ("test", "lock")


def install_digest() -> str:
    """Changes whenever pyproject.toml or the lock does: then .venv is brought up to date."""
    digest = hashlib.sha256(PYPROJECT.read_bytes())
    digest.update(LOCK.read_bytes() if LOCK.exists() else b"no lock")
    return digest.hexdigest()


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def unlocked_requirements() -> list[str]:
    """Dependencies in pyproject.toml that the lock does not pin (the lock is out of date)."""
    import tomllib

    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    wanted = list(project.get("dependencies", []))
    for extra in LOCK_EXTRAS:
        wanted += project.get("optional-dependencies", {}).get(extra, [])
    text = LOCK.read_text(encoding="utf-8") if LOCK.exists() else ""
    pinned = {_name(line) for line in text.splitlines() if "==" in line}
    return [r for r in wanted if _name(r) not in pinned]


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may run on an older python3
        sys.exit("Нужен Python 3.11 или новее / Python 3.11+ is required.")
    if not PYTHON.exists():
        print("Создаю .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = install_digest()
    stamps = [VENV / f".installed-{extras or 'base'}"]
    if not extras:
        stamps.append(VENV / ".installed-test")  # the test install includes the base one
    if any(s.exists() and s.read_text() == digest for s in stamps):
        return
    missing = unlocked_requirements()
    if missing:
        print(
            f"⚠️ {LOCK.name} не закрепляет {', '.join(missing)}: обновите его — {PROG} lock",
            file=sys.stderr,
        )
    print("Устанавливаю зависимости …", flush=True)
    target = f".[{extras}]" if extras else "."
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    constraints = ["-c", str(LOCK)] if LOCK.exists() else []
    subprocess.run([*pip, *constraints, "-e", target], cwd=ROOT, check=True)
    stamps[0].write_text(digest)


def bot(args: list[str]) -> int:
    """Run `python -m bot ARGS` in .venv, in the caller's working directory (its .env)."""
    env = {**os.environ, "SHNOR_BOT_PROG": PROG}
    command = [str(PYTHON), "-m", "bot", *args]
    if os.name != "nt":
        os.execve(command[0], command, env)  # signals (Ctrl-C) go straight to the bot
    return subprocess.call(command, env=env)


def lock(args: list[str]) -> int:
    """Regenerate the lock with uv; existing pins are kept unless --upgrade is given."""
    if not PYTHON.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    if subprocess.call([str(PYTHON), "-m", "uv", "--version"], stdout=subprocess.DEVNULL):
        subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "--quiet", LOCK_TOOL], cwd=ROOT, check=True
        )
    extras = [flag for extra in LOCK_EXTRAS for flag in ("--extra", extra)]
    compile_ = [str(PYTHON), "-m", "uv", "pip", "compile", "pyproject.toml", *extras]
    compile_ += ["--universal", "--quiet", "--custom-compile-command", f"{PROG} lock"]
    code = subprocess.call([*compile_, "-o", LOCK.name, *args], cwd=ROOT)
    if code == 0:
        print(f"{LOCK.name} обновлён. Закоммитьте его вместе с pyproject.toml.")
    return code


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("run", [])
    if command in OWN_COMMANDS and rest[:1] in (["--help"], ["-h"]):
        print(__doc__)
        return 0
    if command in ("--help", "-h"):
        print(__doc__, flush=True)  # then the bot's own commands
    if command == "test":
        ensure_venv("test")
        lint = subprocess.call([str(PYTHON), "-m", "ruff", "check", "."], cwd=ROOT)
        if lint:
            return lint
        # the whole suite on every core (pytest-xdist); a chosen test or option runs as asked
        spread = [] if rest else ["-n", "auto"]
        return subprocess.call([str(PYTHON), "-m", "pytest", "-q", *spread, *rest], cwd=ROOT)
    if command == "lock":
        return lock(rest)
    ensure_venv("")
    return bot([command, *rest])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
