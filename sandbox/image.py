"""The container runtime image: what goes in it, its content-hash tag, how to build it.

Two layers. The *base* has Python, numpy, scipy and sympy; it is either
built offline from a debootstrap root filesystem (no registry needed, the
case on these machines) or from a public base image where a registry is
reachable. The *top* layer adds what a DSL module imports from mmw (the
``mechanistic`` package) and the in-container guest. Each tag is a hash of
exactly what went into it, so a changed ``mechanistic`` gives a new tag and
the backend can say "stale image, run ``mmw sandbox build-image``" instead of
running old code. Nothing here pulls at run time.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = "mmw-sandbox"
BASE_REPO = "mmw-sandbox-base"
SUITE = "bookworm"
MIRROR = os.environ.get("MMW_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ("python3", "python3-numpy", "python3-scipy", "python3-sympy")
BUILD_COMMAND = "mmw sandbox build-image"
CACHE_DIR = Path(os.environ.get("MMW_SANDBOX_CACHE", "/var/cache/mmw"))

# Where a registry is reachable: a slim public image plus the same packages.
REGISTRY_BASE_DOCKERFILE = """\
FROM python:3.11-slim-bookworm
RUN pip install --no-cache-dir numpy scipy sympy
RUN ln -sf /usr/local/bin/python3 /usr/bin/python3 || true
"""

TOP_DOCKERFILE = """\
FROM {base}
COPY opt /opt
USER 65534:65534
WORKDIR /sandbox
ENV PYTHONPATH=/opt/mmw PYTHONDONTWRITEBYTECODE=1
CMD ["python3", "-m", "sandbox.guest"]
"""

_PRUNE = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
          "usr/share/locale", "usr/share/info")


def mmw_root() -> Path:
    return Path(__file__).resolve().parent.parent


def top_files(root: Path | None = None) -> dict[str, bytes]:
    """Files of the top layer, by path in the image (``opt/mmw/...``)."""
    root = root or mmw_root()
    files: dict[str, bytes] = {}
    mech = root / "mechanistic"
    if mech.is_dir():
        for p in sorted(mech.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".json"):
                files[f"opt/mmw/mechanistic/{p.relative_to(mech).as_posix()}"] = p.read_bytes()
    here = Path(__file__).resolve().parent
    files["opt/mmw/sandbox/__init__.py"] = b""
    for name in ("guest.py", "supervise.py"):
        files[f"opt/mmw/sandbox/{name}"] = (here / name).read_bytes()
    return files


def base_tag(method: str = "debootstrap") -> str:
    h = hashlib.sha256()
    if method == "debootstrap":
        h.update(f"debootstrap minbase {SUITE} {' '.join(PACKAGES)}".encode())
    else:
        h.update(REGISTRY_BASE_DOCKERFILE.encode())
    return f"{BASE_REPO}:{method[:4]}-{h.hexdigest()[:12]}"


def image_tag(root: Path | None = None, method: str = "debootstrap") -> str:
    """The tag the current source tree's image must have (a content hash)."""
    h = hashlib.sha256(base_tag(method).encode())
    h.update(TOP_DOCKERFILE.encode())
    for path, data in sorted(top_files(root).items()):
        h.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
    return f"{REPO}:{h.hexdigest()[:16]}"


def missing_image_message(tag: str, present: list[str]) -> str:
    stale = sorted({t for t in present if t.startswith(REPO + ":")})
    have = ", ".join(stale[:3]) + (" ..." if len(stale) > 3 else "")
    what = (f"the sandbox image is stale (have {have}, need {tag}: mechanistic or "
            "the guest changed)") if stale else f"the sandbox image {tag} is not built"
    return f"{what}; run `{BUILD_COMMAND}`"


def _debootstrap_rootfs(dest: Path, log: Callable[[str], None]) -> None:
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"debootstrap {SUITE} -> {tmp} (about a minute)")
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                    SUITE, str(tmp), MIRROR], check=True, stdout=subprocess.DEVNULL)
    for rel in _PRUNE:
        shutil.rmtree(tmp / rel, ignore_errors=True)
    tmp.rename(dest)


def _import_rootfs(client, rootfs: Path, tag: str, log: Callable[[str], None]) -> None:
    log(f"importing {rootfs} as {tag}")
    if shutil.which("podman"):
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["podman", "import", "-", tag], stdin=tar.stdout, check=True,
                       stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise RuntimeError("tar of the root filesystem failed")
        return
    with tempfile.NamedTemporaryFile(suffix=".tar") as f:  # plain Docker: import via the API
        subprocess.run(["tar", "-C", str(rootfs), "-cf", f.name, "."], check=True)
        repo, _, t = tag.partition(":")
        client.api.import_image_from_file(f.name, repository=repo, tag=t)


def _context_tar(dockerfile: str, files: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _has(client, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_image(client, method: str = "auto", *, force: bool = False,
                log: Callable[[str], None] = print) -> str:
    """Build (or reuse) the runtime image; returns its tag.

    ``method``: ``debootstrap`` (offline), ``registry`` (needs a reachable
    registry for the base), or ``auto`` (debootstrap where it is installed).
    """
    if method == "auto":
        method = "debootstrap" if shutil.which("debootstrap") else "registry"
    if method not in ("debootstrap", "registry"):
        raise ValueError(f"unknown build method {method!r}")
    tag = image_tag(method=method)
    if not force and _has(client, tag):
        log(f"{tag} is up to date")
        return tag
    base = base_tag(method)
    if force or not _has(client, base):
        if method == "debootstrap":
            rootfs = CACHE_DIR / f"rootfs-{base.split(':')[1]}"
            if not rootfs.is_dir():
                CACHE_DIR.mkdir(parents=True, exist_ok=True)
                _debootstrap_rootfs(rootfs, log)
            _import_rootfs(client, rootfs, base, log)
        else:
            log(f"building {base} from a registry base image")
            client.images.build(fileobj=_context_tar(REGISTRY_BASE_DOCKERFILE, {}),
                                custom_context=True, tag=base, rm=True)
    log(f"building {tag} on {base}")
    client.images.build(fileobj=_context_tar(TOP_DOCKERFILE.format(base=base), top_files()),
                        custom_context=True, tag=tag, rm=True, pull=False)
    prune_stale(client, keep=tag, log=log)
    return tag


def prune_stale(client, keep: str, log: Callable[[str], None] = print) -> None:
    """Remove older top-layer images (each rebuild after a source change leaves one)."""
    for img in client.images.list():
        for t in img.tags:
            short = t.removeprefix("localhost/").removeprefix("docker.io/library/")
            if short.startswith(REPO + ":") and short != keep:
                try:
                    client.images.remove(t)
                    log(f"removed stale {short}")
                except Exception as exc:  # in use by a warm container: leave it
                    log(f"kept {short} ({type(exc).__name__})")
