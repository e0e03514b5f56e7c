"""The runtime packages: requirements-lock.txt (scripts/lock.sh) pins every one the image installs, within the
ranges of pyproject.toml and sailor/pyproject.toml, with hashes; and the tests run exactly those versions."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def locked() -> dict[str, tuple[str, int]]:
    """Name → (pinned version, number of sha256 hashes) of requirements-lock.txt."""
    out: dict[str, tuple[str, int]] = {}
    text = (ROOT / "requirements-lock.txt").read_text()
    for block in re.split(r"\n(?=\S)", text):
        first = block.split("\n", 1)[0]
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", first)
        if match:
            out[canonicalize_name(match.group(1))] = (match.group(2), block.count("--hash=sha256:"))
    return out


def roots() -> list[Requirement]:
    connector = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    sailor = tomllib.loads((ROOT / "sailor/pyproject.toml").read_text())
    return [Requirement(r) for r in connector + sailor["project"]["dependencies"] + sailor["build-system"]["requires"]]


def test_given_the_lock_then_every_declared_dependency_is_pinned_within_its_range_with_hashes() -> None:
    pins = locked()
    assert pins, "requirements-lock.txt holds no pinned package"
    for req in roots():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in requirements-lock.txt: run scripts/lock.sh"
        assert req.specifier.contains(pins[name][0], prereleases=True), f"{name}=={pins[name][0]} breaks {req}"
    assert all(hashes >= 1 for _, hashes in pins.values()), [n for n, (_, h) in pins.items() if not h]


def test_given_the_lock_then_the_tests_run_the_versions_the_image_installs() -> None:
    pins = locked()
    dev = {canonicalize_name(Requirement(line).name): str(Requirement(line).specifier)
           for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
           if line.strip() and not line.startswith("#")}
    botocore = canonicalize_name("botocore")
    assert dev[botocore] == f"=={pins[botocore][0]}"  # the version the role modes are tested with
    mismatched = {name: (pinned, version(name)) for name, (pinned, _) in pins.items() if version(name) != pinned}
    assert mismatched == {}, "scripts/setup.sh installs the lock first; run it again"
