"""The README's set-up-and-go commands. ``scripts/demo.sh`` is run the way a newcomer runs it: a clean
environment (no activated venv on PATH) in which proxy variables name a proxy that does not answer; the demo
talks only to the emulator on loopback, so it must not go through them. ``scripts/setup.sh`` (which both
commands run first) remakes a ``.venv`` left half-made and keeps a working one. The second command,
``scripts/test.sh``, is what CI runs (``.ci/run``)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = ("Resolve Customer", "Batch Meter Usage", "Meter Usage", "Register Usage")


def test_given_the_readme_demo_command_then_every_action_emits_its_data_and_the_emulator_shows_the_bill() -> None:
    unreachable = "http://127.0.0.1:9"  # the discard port: nothing listens there
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "http_proxy": unreachable, "https_proxy": unreachable, "HTTP_PROXY": unreachable,
           "HTTPS_PROXY": unreachable, "ALL_PROXY": unreachable}
    # first the set-up without the dead proxy (it installs nothing once .venv is current; pip must not be sent
    # through a proxy that does not answer), then the command itself as the README gives it
    direct = {name: value for name, value in env.items() if "proxy" not in name.lower()}
    subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, env=direct, capture_output=True, timeout=900, check=True)
    done = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    sections = re.split(r"^== ", done.stdout, flags=re.MULTILINE)[1:]
    titles = [section.split(":", 1)[0] for section in sections]
    assert titles[:4] == list(ACTIONS) and len(titles) == 5, titles
    for section in sections[:4]:
        assert "emitted data" in section and "emitted end" in section, section[:500]
        assert "emitted error" not in section and "emitted rebound" not in section, section[:2000]
    bill = sections[4]  # the emulator's billed records, read over loopback past the proxy variables
    assert bill.startswith("What the emulator billed") and '"quantityDecimal": "42.125"' in bill, bill[:2000]


def _setup_copy(tmp_path: Path) -> Path:
    """``scripts/setup.sh`` alone in an empty project directory (no requirement files: with the install stamp
    present it installs nothing, so only its check of ``.venv`` runs)."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "setup.sh").write_text((ROOT / "scripts" / "setup.sh").read_text())
    return tmp_path


def test_given_a_half_made_venv_and_no_usable_python_then_setup_removes_it_and_says_what_to_install(
        tmp_path: Path) -> None:
    project = _setup_copy(tmp_path)
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(project / ".venv")], check=True, timeout=60)
    (project / ".venv" / ".installed").touch()  # even a stamped venv without pip is made again
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=project, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": "/nonexistent/python3"}, check=False)
    assert done.returncode == 1
    assert "/nonexistent/python3 is missing or older than 3.11" in done.stderr, done.stderr
    assert not (project / ".venv").exists()


def test_given_a_working_venv_then_setup_keeps_it(tmp_path: Path) -> None:
    import sys

    project = _setup_copy(tmp_path)
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").symlink_to(sys.executable)  # a Python 3.11+ with pip
    (project / ".venv" / ".installed").touch()
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=project, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": "/nonexistent/python3"}, check=False)
    assert done.returncode == 0, done.stderr
    assert (project / ".venv" / ".installed").exists() and "creating .venv" not in done.stderr
