#!/usr/bin/env python3
"""Set up a virtual environment in .venv and run the bot or the tests.

    python3 scripts/dev.py run      # install, migrate, start (console when no BOT_TOKEN)
    python3 scripts/dev.py test     # install with test extras, ruff, pytest

Only the Python standard library is used here, so it works on a fresh machine.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may run on an older python3
        sys.exit("Нужен Python 3.11 или новее / Python 3.11+ is required.")
    if not PYTHON.exists():
        print("Creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print("Installing dependencies …", flush=True)
    target = f".[{extras}]" if extras else "."
    subprocess.run(
        [
            str(PYTHON),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            target,
        ],
        cwd=ROOT,
        check=True,
    )
    stamp.write_text(digest)


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    rest = sys.argv[2:]
    if command == "run":
        ensure_venv("")
        return subprocess.call([str(PYTHON), "-m", "bot", "run", *rest], cwd=ROOT)
    if command == "console":
        ensure_venv("")
        return subprocess.call([str(PYTHON), "-m", "bot", "console", *rest], cwd=ROOT)
    if command == "test":
        ensure_venv("test")
        lint = subprocess.call([str(PYTHON), "-m", "ruff", "check", "."], cwd=ROOT)
        if lint:
            return lint
        return subprocess.call([str(PYTHON), "-m", "pytest", "-q", *rest], cwd=ROOT)
    sys.exit(f"unknown command {command!r}: use run, console or test")


if __name__ == "__main__":
    raise SystemExit(main())
