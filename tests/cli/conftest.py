import os
import subprocess
import sys
from pathlib import Path

import pytest


class Cli:
    """Runs `python -m relate ...` as a separate process, as an operator would."""

    def __init__(self, env: dict[str, str], cwd: Path):
        self.env = env
        self.cwd = cwd

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "relate", *args], env=self.env, cwd=self.cwd,
                                capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"relate {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "__" not in k}
    env.update({"ConnectionStrings__DefaultConnection": url, "Data__Directory": str(tmp_path / "data"),
                "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    return env


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI on a fresh SQLite database (auto-migrated on first use)."""
    return Cli(_env(tmp_path, f"sqlite:///{tmp_path / 'relate.db'}"), tmp_path)


@pytest.fixture
def pg_cli(tmp_path: Path, pg_store, pg_database) -> Cli:
    """The CLI on the (emptied) PostgreSQL test database."""
    env = _env(tmp_path, pg_database)
    env["Database__AutoMigrate"] = "false"
    return Cli(env, tmp_path)
