#!/usr/bin/env python3
"""Build the connector image with buildah, on machines without a registry (README.md "The image").

    python3 scripts/image.py base              make (once) the Debian base image, print its name
    python3 scripts/image.py build [TAG]       build Dockerfile on that base (or on $BASE), print TAG
    python3 scripts/image.py run TAG -- ARGS   run the image's entry point with ARGS (buildah run)

The base is ``debootstrap --variant=minbase`` of Debian bookworm with python3 (3.11, as in the Dockerfile's
default ``python:3.11-slim``) and python3-venv, trimmed like Debian's slim images and turned into an image
with ``podman import``. The root file system is cached as a tarball in $METERING_IMAGE_CACHE (default
/var/tmp/metering-connector-image), so after the first run (about a minute) ``base`` only re-imports it
when the image is missing from the container storage.

``build`` runs ``buildah bud --isolation chroot --network host`` (what works in containers without their
own cgroups). pip inside the build is given this machine's pip settings as build secrets, mounted for the
install step only and never stored in the image: the index URLs, trusted hosts, proxy and time-out of
``pip config list`` (the same files and PIP_* variables the host's pip reads; local ``file://`` indexes
and find-links are left out, they do not exist in the build) and the CA bundle pip uses here.

``run`` uses ``buildah run --isolation chroot --network host`` (the container shares the host's network,
so 127.0.0.1 is the host's loopback) with the image's own entry point, user, working directory and
environment, plus ``-e NAME=VALUE`` options given before ``--``. ``podman run`` needs a runtime that can
set rlimits and cgroups, which a sandbox may not allow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
# python3-venv brings ensurepip (pip for the image's venv); ca-certificates as in python:3.11-slim
PACKAGES = ("python3", "python3-venv", "ca-certificates")
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What Debian's slim images leave out, and what only apt needs at build time.
TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
        "usr/share/locale", "usr/share/lintian", "var/log", "tmp")
# Same PATH and LANG as python:3.11-slim, so the Dockerfile sees the same environment on both bases.
IMPORT_CHANGES = ("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "ENV LANG=C.UTF-8",
                  'CMD ["python3"]')
# pip options worth carrying into the build (others name local files or do not matter there).
PIP_KEYS = ("index-url", "extra-index-url", "trusted-host", "proxy", "timeout", "default-timeout", "retries")


def say(msg: str) -> None:
    print(f"[image] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("METERING_IMAGE_CACHE", "/var/tmp/metering-connector-image"))


def base_key() -> str:
    """Changes when what goes into the base changes (suite, packages, trimming, import settings)."""
    spec = json.dumps([SUITE, PACKAGES, TRIM, IMPORT_CHANGES])
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def base_name() -> str:
    return f"localhost/metering-connector-base:{SUITE}-{base_key()}"


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(f"[image] {tool} is missing: apt-get install {package} (scripts/setup.sh --all does)")
    return path


def image_exists(name: str) -> bool:
    return subprocess.run([need("podman", "podman"), "image", "exists", name], check=False).returncode == 0


def make_rootfs_tarball(tarball: Path) -> None:
    """debootstrap into a temporary directory, trim it, pack it as ``tarball`` (written atomically)."""
    debootstrap = need("debootstrap", "debootstrap")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        say(f"debootstrap --variant=minbase {SUITE} with {', '.join(PACKAGES)} (about a minute)")
        log = Path(tmp) / "debootstrap.log"
        with open(log, "wb") as out:
            proc = subprocess.run([debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
                                   str(rootfs), MIRROR], stdout=out, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"[image] debootstrap failed ({proc.returncode}):\n{tail}")
        for rel in TRIM:
            target = rootfs / rel
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.rename(tarball)


def ensure_base() -> str:
    """The base image's name; made from the cached tarball (or debootstrap) only when it is missing."""
    name = base_name()
    if image_exists(name):
        return name
    tarball = cache_dir() / f"{SUITE}-{base_key()}.tar"
    if not tarball.exists():
        make_rootfs_tarball(tarball)
    say(f"podman import {tarball.name} as {name}")
    cmd = [need("podman", "podman"), "import", "--quiet"]
    for change in IMPORT_CHANGES:
        cmd += ["--change", change]
    subprocess.run([*cmd, str(tarball), name], check=True, stdout=subprocess.DEVNULL)
    return name


def host_pip_settings(python: str = sys.executable) -> tuple[dict[str, str], str | None]:
    """(pip options for the build, CA bundle file) as this machine's pip sees them.

    ``pip config list`` shows the merged configuration files as ``section.key='value'`` and the PIP_*
    variables as ``:env:.key='value'``; the variables win, as in pip itself.
    """
    proc = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False)
    merged: dict[str, str] = {}
    env_values: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^([^.]*)\.([A-Za-z0-9_-]+)='(.*)'$", line)
        if not m:
            continue
        section, key, value = m.groups()
        if section == ":env:":
            env_values[key] = value
        elif section in ("global", "install"):
            merged[key] = value
    merged.update(env_values)
    options: dict[str, str] = {}
    for key in PIP_KEYS:
        if key not in merged:
            continue
        words = [w for w in merged[key].split() if not w.startswith("file:") and not w.startswith("/")]
        if words:
            options[key] = " ".join(words)
    cert = merged.get("cert") or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if cert and not Path(cert).is_file():
        cert = None
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if proxy and "proxy" not in options:
        options["proxy"] = proxy
    return options, cert


def build(tag: str, base: str | None) -> str:
    buildah = need("buildah", "buildah")
    base = base or ensure_base()
    options, cert = host_pip_settings()
    with tempfile.TemporaryDirectory(prefix="image-secrets-") as tmp:
        lines = ["[global]"] + [f"{k} = {v}" for k, v in options.items()]
        cmd = [buildah, "bud", "--isolation", "chroot", "--network", "host", "--layers=false",
               "--build-arg", f"BASE={base}", "-f", str(ROOT / "Dockerfile"), "-t", tag]
        if cert:
            lines.append("cert = /run/secrets/pip-cert")
            cmd += ["--secret", f"id=pip-cert,src={cert}"]
        conf = Path(tmp) / "pip.conf"
        conf.write_text("\n".join(lines) + "\n")
        cmd += ["--secret", f"id=pip.conf,src={conf}", str(ROOT)]
        say(f"building {tag} on {base}")
        subprocess.run(cmd, check=True, stdout=sys.stderr)
    return tag


def image_config(tag: str) -> dict[str, Any]:
    """The OCI image configuration (Entrypoint, Cmd, User, WorkingDir, Env) of ``tag``."""
    out = subprocess.run([need("buildah", "buildah"), "inspect", "--type", "image", tag], capture_output=True,
                         text=True, check=True).stdout
    config: dict[str, Any] = json.loads(out)["OCIv1"]["config"]
    return config


def run_options(tag: str, args: list[str], env: list[str]) -> tuple[list[str], list[str]]:
    """(``buildah run`` options, command) that start the entry point of ``tag`` with ``args`` (or its CMD)
    as the image's user, in its working directory; ``env`` (NAME=VALUE) is added to the image's own."""
    config = image_config(tag)
    entry = [str(x) for x in (config.get("Entrypoint") or [])]
    cmd = [str(x) for x in (config.get("Cmd") or [])]
    opts = ["--isolation", "chroot", "--network", "host"]
    if config.get("User"):
        opts += ["--user", str(config["User"])]
    if config.get("WorkingDir"):
        opts += ["--workingdir", str(config["WorkingDir"])]
    for item in env:
        opts += ["--env", item]
    return opts, entry + (args if args else cmd)


def run(tag: str, args: list[str], env: list[str]) -> int:
    """Run the entry point in a fresh working container of ``tag`` (removed afterwards); its exit code."""
    buildah = need("buildah", "buildah")
    ctr = subprocess.run([buildah, "from", "--pull-never", tag], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        opts, argv = run_options(tag, args, env)
        return subprocess.run([buildah, "run", *opts, ctr, "--", *argv], check=False).returncode
    finally:
        subprocess.run([buildah, "rm", ctr], capture_output=True, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("base", help="make the Debian base image (cached) and print its name")
    b = sub.add_parser("build", help="build the Dockerfile with buildah and print the tag")
    b.add_argument("tag", nargs="?", default="localhost/aws-marketplace-metering-connector:dev")
    b.add_argument("--base", default=os.environ.get("BASE"), help="base image (default: the Debian base)")
    r = sub.add_parser("run", help="run the image's entry point: run TAG [-e NAME=VALUE…] -- ARGS")
    r.add_argument("tag")
    r.add_argument("-e", "--env", action="append", default=[], help="NAME=VALUE for the container")
    argv = sys.argv[1:] if argv is None else argv
    # everything after "--" goes to the container untouched
    cut = argv.index("--") if "--" in argv else len(argv)
    ns = parser.parse_args(argv[:cut])
    if ns.cmd == "base":
        print(ensure_base())
        return 0
    if ns.cmd == "build":
        print(build(ns.tag, ns.base))
        return 0
    return run(ns.tag, argv[cut + 1:], ns.env)


if __name__ == "__main__":
    sys.exit(main())
