"""The connector image, built once per session from the Dockerfile with buildah (scripts/image.py)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from spec.sailor.helpers import FakeApi

ROOT = Path(__file__).resolve().parents[2]
IMAGE_PY = ROOT / "scripts" / "image.py"


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    base: str
    build_seconds: float
    size_bytes: int
    base_size_bytes: int
    config: dict[str, Any]


def image_script() -> ModuleType:
    """scripts/image.py as a module (the test starts containers the way its ``run`` command does)."""
    spec = importlib.util.spec_from_file_location("metering_image_script", IMAGE_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image_size(name: str) -> int:
    out = subprocess.run(["podman", "image", "inspect", name], capture_output=True, text=True, check=True).stdout
    return int(json.loads(out)[0]["Size"])


@pytest.fixture(scope="session")
def built_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    """Build the Dockerfile on the Debian base (made and cached by ``scripts/image.py base``); removed after."""
    base = subprocess.run([sys.executable, str(IMAGE_PY), "base"], capture_output=True, text=True, timeout=600,
                          check=True).stdout.strip()
    tag = f"localhost/metering-connector-test:{uuid.uuid4().hex[:10]}"
    log = tmp_path_factory.mktemp("image") / "build.log"
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.run([sys.executable, str(IMAGE_PY), "build", tag, "--base", base], stdout=out,
                              stderr=subprocess.STDOUT, timeout=900, check=False)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, f"image build failed:\n{log.read_text(errors='replace')[-4000:]}"
    built = BuiltImage(tag, base, seconds, image_size(tag), image_size(base), image_script().image_config(tag))
    # shown with -s / in the CI log: the figures the README quotes
    print(f"\n[image] built {tag} in {seconds:.1f}s: {built.size_bytes / 1e6:.1f} MB "
          f"(base {built.base_size_bytes / 1e6:.1f} MB, +{(built.size_bytes - built.base_size_bytes) / 1e6:.1f} MB)")
    yield built
    subprocess.run(["buildah", "rmi", tag], capture_output=True, check=False)


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    """The platform's API (step document, result URL) as a recording local HTTP server."""
    api = FakeApi()
    yield api
    api.stop()
