"""The image built from the Dockerfile and run: its contents, service mode and flow-step mode.

Built with buildah on a Debian bookworm base (scripts/image.py; no registry here for python:3.11-slim) and
run with ``buildah run --isolation chroot --network host``: the container shares the host's loopback, so
it reaches the emulator, the result URL and the broker on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from metering_emulator.testing import EmulatorServer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from spec.connector.builders import PRODUCT, a_config
from spec.image.conftest import ROOT, BuiltImage, image_script
from spec.sailor.helpers import API_KEY, API_USER, PASSWORD, FakeApi, PlatformSide, sailor_env, step_doc
from spec.support.rabbit import RabbitBroker

IMAGE = image_script()


class Container:
    """One working container of the image (``buildah from``), removed on exit."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.name = subprocess.run(["buildah", "from", "--pull-never", tag], capture_output=True, text=True,
                                   check=True).stdout.strip()

    def entrypoint_cmd(self, args: list[str], env: dict[str, str]) -> list[str]:
        """The image's entry point with ``args``, as its user, in its working directory (scripts/image.py)."""
        opts, argv = IMAGE.run_options(self.tag, args, [f"{k}={v}" for k, v in env.items()])
        return ["buildah", "run", *opts, self.name, "--", *argv]

    def sh(self, script: str) -> str:
        """Run a shell command as the image's user; its stdout."""
        opts, _ = IMAGE.run_options(self.tag, [], [])
        code, out, err = run_bounded(["buildah", "run", *opts, self.name, "--", "/bin/sh", "-c", script])
        assert code == 0, err
        return out

    @contextlib.contextmanager
    def mounted(self) -> Iterator[Path]:
        """The container's root file system, seen from the host."""
        path = subprocess.run(["buildah", "mount", self.name], capture_output=True, text=True,
                              check=True).stdout.strip()
        try:
            yield Path(path)
        finally:
            subprocess.run(["buildah", "umount", self.name], capture_output=True, check=False)

    def remove(self) -> None:
        subprocess.run(["buildah", "rm", self.name], capture_output=True, check=False)


def kill_tree(proc: subprocess.Popen[Any]) -> None:
    """Kill ``buildah run`` and what it started: its chroot helper and the command outlive a killed buildah."""
    if proc.poll() is not None:
        return
    tree = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.wait(10)
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def run_bounded(cmd: list[str], timeout: float = 120) -> tuple[int, str, str]:
    """Run ``cmd`` to its end (killed with its whole tree after ``timeout``): exit code, stdout, stderr."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        raise AssertionError(f"{cmd[-3:]} did not end in {timeout}s") from None
    return proc.returncode, out, err


@contextlib.contextmanager
def container(image: BuiltImage) -> Iterator[Container]:
    ctr = Container(image.tag)
    try:
        yield ctr
    finally:
        ctr.remove()


def runtime_requirements() -> list[Requirement]:
    """The one list: [project].dependencies of pyproject.toml, plus the sailor's own."""
    reqs = []
    for pyproject in (ROOT / "pyproject.toml", ROOT / "sailor" / "pyproject.toml"):
        reqs += [Requirement(r) for r in tomllib.loads(pyproject.read_text())["project"]["dependencies"]]
    return reqs


def dev_requirement_names() -> set[str]:
    names: set[str] = set()
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(str(canonicalize_name(Requirement(line).name)))
    return names


DISTS_SCRIPT = (
    "import importlib.metadata as m, json, sys; print(json.dumps({'python': list(sys.version_info[:2]), "
    "'dists': {d.metadata['Name']: [d.version, d.requires or []] for d in m.distributions()}}))"
)


def test_given_the_dockerfile_then_its_base_is_an_arg_defaulting_to_python_3_11_slim_bookworm() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim-bookworm(@sha256:[0-9a-f]{64})?$", text, re.MULTILINE)
    assert re.findall(r"^FROM .*$", text, re.MULTILINE) == ["FROM ${BASE}"]
    # one list: no requirement of pyproject.toml is spelled out in the Dockerfile
    for req in runtime_requirements():
        assert not re.search(rf"\b{re.escape(req.name)}\b", text), f"{req} is written in the Dockerfile too"


def test_given_the_image_then_it_holds_exactly_the_runtime_dependencies_and_no_test_tool(
        built_image: BuiltImage) -> None:
    with container(built_image) as ctr:
        found = json.loads(ctr.sh(f'python -c "{DISTS_SCRIPT}"'))
    assert found["python"] == [3, 11]
    installed = {canonicalize_name(name): (version, requires) for name, (version, requires) in found["dists"].items()}
    roots = runtime_requirements()
    for req in roots:
        name = canonicalize_name(req.name)
        assert name in installed, f"{req} is not installed"
        assert req.specifier.contains(installed[name][0], prereleases=True), (req, installed[name][0])
    # everything installed is the sailor or needed by a runtime requirement: walk the requirement graph
    needed = {"elasticio-sailor-py"}
    todo = [canonicalize_name(r.name) for r in roots]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        for spec in installed.get(name, ("", []))[1]:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    assert set(installed) == needed, f"not needed: {sorted(set(installed) - needed)}"
    test_tools = dev_requirement_names() - {canonicalize_name(r.name) for r in roots}
    assert {"pytest", "hypothesis", "mypy", "ruff"} <= test_tools
    assert not test_tools & set(installed)
    assert "pip" not in installed and "pytest" not in installed


def test_given_the_image_then_the_sailor_is_the_entrypoint_run_by_a_non_root_user_and_no_build_secret_is_kept(
        built_image: BuiltImage) -> None:
    config = built_image.config
    assert config["Entrypoint"] == ["/opt/venv/bin/python", "-m", "elasticio_sailor"]
    assert not config.get("Cmd")
    assert config["User"] == "1000:1000" and config["WorkingDir"] == "/home/apps"  # numeric: runAsNonRoot
    env = {k: v for k, _, v in (str(item).partition("=") for item in config.get("Env") or [])}
    assert env["ELASTICIO_COMPONENT_PATH"] == "." and not any(k.startswith("PIP_") for k in env)
    with container(built_image) as ctr:
        assert ctr.sh("id -u; pwd").split() == ["1000", "/home/apps"]
        # the component can be read but not changed by the user that runs it: neither a file nor the directory
        # (else a file could be renamed and replaced, or a module dropped in front of sys.path)
        assert ctr.sh("test -w component.json && echo writable || echo read-only").strip() == "read-only"
        assert ctr.sh("test -w . && echo writable || echo read-only").strip() == "read-only"
        assert ctr.sh("touch requests.py 2>/dev/null && echo created || echo refused").strip() == "refused"
        with ctr.mounted() as rootfs:
            assert (rootfs / "home/apps/component.json").read_bytes() == (ROOT / "component.json").read_bytes()
            assert (rootfs / "home/apps/lib/__pycache__").is_dir()
            component = json.loads((ROOT / "component.json").read_text())
            for entry in component["actions"].values():
                assert (rootfs / "home/apps" / entry["main"]).is_file(), entry["main"]
            assert (rootfs / "home/apps/verifyCredentials.py").is_file()
            assert not (rootfs / "tmp/build").exists()
            leftovers = [p for p in rootfs.rglob("pip.conf") if "/proc/" not in str(p)]
            assert leftovers == [] and not (rootfs / "run/secrets/pip-cert").exists()


def service_env(api: FakeApi, cfg: dict[str, Any]) -> dict[str, str]:
    host = api.url.removeprefix("http://")
    return {"ELASTICIO_CFG": json.dumps(cfg), "ELASTICIO_API_URI": api.url,
            "ELASTICIO_API_USERNAME": API_USER, "ELASTICIO_API_KEY": API_KEY,
            "ELASTICIO_POST_RESULT_URL": f"http://task%40x.com:p%40ss@{host}/result", "LOG_LEVEL": "info"}


def test_given_the_image_in_service_mode_then_verify_credentials_answers_through_the_result_url(
        built_image: BuiltImage, metering_emulator: EmulatorServer, fake_api: FakeApi) -> None:
    fake_api.routes[("POST", "/result")] = [(200, {})]
    good = a_config(metering_emulator.url)
    bad = a_config(metering_emulator.url, secretAccessKey="wrong/secret/key/0000000000000000000000")
    with container(built_image) as ctr:
        for cfg in (good, bad):
            code, out, err = run_bounded(ctr.entrypoint_cmd(["service", "verifyCredentials"],
                                                            service_env(fake_api, cfg)))
            assert code == 0, out + err
    posts = [r for r in fake_api.requests if (r.method, r.path) == ("POST", "/result")]
    assert len(posts) == 2 and all(p.auth == fake_api.basic_auth("task@x.com", "p@ss") for p in posts)
    verified, refused = (json.loads(p.body) for p in posts)
    assert verified == {"status": "success", "data": {"verified": True}}
    assert refused["status"] == "success" and refused["data"]["verified"] is False
    assert refused["data"]["reason"].startswith("Bad credentials"), refused
    assert "0000000000000000000000" not in posts[1].body.decode()
    # both answers came from the emulator: the container signed real requests to it
    calls = sum(op["calls"] for op in metering_emulator.admin.stats()["operations"].values())
    assert calls >= 2


def test_given_the_image_as_a_flow_step_then_a_message_from_the_broker_is_billed_and_emitted(
        built_image: BuiltImage, metering_emulator: EmulatorServer, fake_api: FakeApi, rabbit: RabbitBroker,
        tmp_path: Path) -> None:
    platform = PlatformSide(rabbit.url, "image-step")
    try:
        doc = step_doc(function="meterUsage", config=a_config(metering_emulator.url))
        fake_api.routes[("GET", "/v1/tasks/flow1/steps/step_2")] = [(200, doc)]
        env = {k: v for k, v in sailor_env(platform, fake_api, "meterUsage").items()
               if k.startswith("ELASTICIO_") or k == "LOG_LEVEL"}
        log = tmp_path / "step.log"
        with container(built_image) as ctr, open(log, "wb") as out:
            proc = subprocess.Popen(ctr.entrypoint_cmd([], env), stdout=out, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 120
                while platform.consumers() < 1:
                    assert proc.poll() is None, f"step exited {proc.returncode}: {log.read_text()[-3000:]}"
                    assert time.monotonic() < deadline, "step did not start consuming: " + log.read_text()[-3000:]
                    time.sleep(0.1)
                stamp = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
                mid = platform.publish({"body": {"ProductCode": PRODUCT, "Timestamp": stamp,
                                                 "UsageDimension": "storage_gb", "UsageQuantity": 42}})
                try:
                    [output] = platform.get("message", timeout=60)
                except AssertionError as exc:
                    errors = [platform.cipher.decrypt(json.loads(e.body)["error"].encode(), 1)
                              for e in platform.get("error", platform.count("error"))]
                    raise AssertionError(f"{exc}; errors: {errors}; log: {log.read_text()[-3000:]}") from None
                # buildah run does not forward SIGTERM (it kills its child); chroot isolation has no PID
                # namespace, so the platform's stop signal goes to the sailor process itself, as docker stop would
                [sailor] = [p for p in psutil.Process(proc.pid).children(recursive=True)
                            if p.cmdline() == built_image.config["Entrypoint"]]
                sailor.send_signal(signal.SIGTERM)
                assert proc.wait(60) == 0, log.read_text()[-3000:]
            finally:
                kill_tree(proc)
        body = platform.decode(output)["body"]
        assert output.headers["parentMessageId"] == mid
        [record] = metering_emulator.admin.records()["records"]
        assert body["MeteringRecordId"] == record["meteringRecordId"]
        assert platform.count("error") == 0 and platform.unacked_or_ready() == 0
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        assert lines, "the sailor in the image logged no JSON line"
        assert PASSWORD not in log.read_text() and API_KEY not in log.read_text()
    finally:
        platform.close()
