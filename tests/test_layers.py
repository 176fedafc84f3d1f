"""The house's layer rules hold, and breaking any of them fails the suite.

The rules live in pyproject.toml ([tool.importlinter]) and are checked by import-linter, a well-kept tool
that reads the imports (function-level ones too) without running the code: models/ imports nothing of the
app; bot/ never imports models/, worker/ or torch; worker/ and bench/ reach bot/ only through bot.contract,
which imports no telegram.ext, rq or torch and none of the bot's front end; no import circles inside bot/,
worker/ or models/. Each rule is then broken on a copy of the tree, one import at a time, and must fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--no-logo"]
PACKAGES = ("bot", "worker", "models", "bench")


def _lint(where: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400"}  # one line per contract in its report
    return subprocess.run(LINT, cwd=where, capture_output=True, text=True, timeout=300, env=env)


def test_the_layers_hold():
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "broken" not in run.stdout.lower().replace("0 broken", ""), run.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the packages and the rules, to break."""
    root = tmp_path_factory.mktemp("tree")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "locales"))
    shutil.copy(ROOT / "pyproject.toml", root)
    return root


# (file, the import added to it, the rule that must then be reported broken)
BREAKS = [
    ("models/engine.py", "from bot.contract import job", "models/ is the image science"),
    ("models/weights.py", "import models.engines", "no import circles"),
    ("bot/handlers.py", "import torch", "bot/ (all of it) never imports"),
    ("bot/queue.py", "from models import engines", "bot/ (all of it) never imports"),
    ("worker/stages.py", "from bot import queue", "worker/ and bench/ import bot.contract"),
    ("worker/tasks.py", "import bot.handlers", "worker/ and bench/ import bot.contract"),
    ("bench/cache.py", "from bot.requests import Image", "worker/ and bench/ import bot.contract"),
    ("bot/contract/keys.py", "import rq", "bot.contract imports no telegram.ext"),
    ("bot/contract/followups.py", "from telegram.ext import CallbackContext", "bot.contract imports no telegram.ext"),
    ("bot/contract/texts.py", "import torch", "bot.contract imports no telegram.ext"),
    ("bot/contract/texts.py", "from bot import requests", "bot.contract sits below the bot's front end"),
    ("bot/submit.py", "from bot import handlers", "no import circles"),
    ("worker/stages.py", "from worker import tasks", "no import circles"),
    ("bot/newthing.py", "import bot.contract", "bot.contract sits below the bot's front end"),  # unplaced module
]


@pytest.mark.parametrize("path,line,rule", BREAKS, ids=[f"{p}:{line}" for p, line, _ in BREAKS])
def test_breaking_a_rule_fails(tree, path, line, rule):
    target = tree / path
    before = target.read_text() if target.exists() else None
    target.write_text((before or '"""A module no layer names."""\n') + f"\n{line}  # a broken rule\n")
    try:
        run = _lint(tree)
    finally:
        if before is None:
            target.unlink()
        else:
            target.write_text(before)
    assert run.returncode != 0, f"adding `{line}` to {path} went unnoticed:\n{run.stdout}"
    broken = [ln for ln in run.stdout.splitlines() if ln.rstrip().endswith("BROKEN") or "BROKEN (" in ln]
    assert any(rule in ln for ln in broken), f"{rule!r} not reported broken:\n{run.stdout}"
