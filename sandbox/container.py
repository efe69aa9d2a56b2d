"""The ``container`` backend: the docker SDK against any Docker-API endpoint.

Docker Engine or Podman's ``podman system service`` (which speaks the same
API). Each container: no network, read-only root, a sized tmpfs work dir,
memory = memory+swap limit, CPU and pids limits, user 65534, all
capabilities dropped, no-new-privileges, the engine's default seccomp
profile, explicit ulimits (nofile and nproc at or below ours: Podman without
CAP_SYS_RESOURCE cannot raise them), and removal afterwards. Never pulls: a
missing or stale image is a clear error naming ``mmw sandbox build-image``.

Inside, :mod:`sandbox.guest` supervises each run (rlimits, wall clock,
output caps, mmw's own seccomp filter on top of the engine's, killing
everything the run started). It is the container's pid 1 (no separate init:
an init would hold the attach stream's pipes where the code could open them
through ``/proc/1/fd``), non-dumpable, and it reaps orphans itself. The host
talks to it over the attach stream, one line each way, and accepts only an
answer tagged with the current request's nonce (:mod:`sandbox.protocol`); a
forged line fails the run and a warm container that carried one is removed.
The host also keeps an outer deadline and kills the container if the guest
stops answering. With ``warm=True`` one container serves every run of this
sandbox object.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass

from sandbox import image as image_mod
from sandbox import seccomp as seccomp_mod
from sandbox.protocol import (
    Answer,
    decode_answer,
    encode_request,
    max_answer_bytes,
    new_nonce,
    read_answer,
)
from sandbox.spec import (
    Guarantees,
    LimitHit,
    MiB,
    RunResult,
    RunSpec,
    SandboxError,
    failed_result,
)

_GUEST_HEADROOM = 96 * MiB  # the guest's own interpreter shares the container's memory
_PRELOAD_HEADROOM = 128 * MiB  # a guest holding sympy + mechanistic, and its forks' COW copies
_GUEST_PIDS = 8


def candidate_endpoints() -> list[str]:
    """DOCKER_HOST, then the usual Docker and Podman sockets, then mmw's CI socket."""
    out = []
    if os.environ.get("DOCKER_HOST"):
        out.append(os.environ["DOCKER_HOST"])
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    socks = ["/var/run/docker.sock", "/run/podman/podman.sock", "/run/mmw/podman.sock"]
    if xdg:
        socks.insert(1, os.path.join(xdg, "podman", "podman.sock"))
        socks.insert(1, os.path.join(xdg, "docker.sock"))
    out += [f"unix://{s}" for s in socks if os.path.exists(s)]
    return list(dict.fromkeys(out))


def connect(base_url: str | None = None, timeout: float = 5.0):
    """A pinged docker client for the first endpoint that answers, else SandboxError."""
    try:
        import docker
    except ImportError as exc:
        raise SandboxError("the docker SDK is not installed (pip install 'docker>=7')") from exc
    urls = [base_url] if base_url else candidate_endpoints()
    errors = []
    for url in urls:
        try:
            client = docker.DockerClient(base_url=url, timeout=timeout)
            client.ping()
            client.api.timeout = 120  # builds, removals under load; runs keep their own deadline
            return client
        except Exception as exc:
            errors.append(f"{url}: {type(exc).__name__}")
    tried = "; ".join(errors) or "no DOCKER_HOST and no Docker/Podman socket found"
    raise SandboxError(f"no container engine answers ({tried})")


@dataclass(frozen=True)
class ContainerConfig:
    """Container backend settings; ``image`` None means the current content-hash tag."""

    base_url: str | None = None
    image: str | None = None
    warm: bool = False
    preload: tuple[str, ...] = ("mechanistic",)  # warm only: imported once, runs fork from it
    cpus: float = 1.0
    start_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.cpus <= 64:
            raise ValueError("ContainerConfig.cpus must be in (0, 64]")
        if self.start_timeout_s <= 0:
            raise ValueError("ContainerConfig.start_timeout_s must be positive")


def resolve_image(client, wanted: str | None = None) -> str:
    """The image to run: ``wanted``, or the tag matching the current source tree."""
    import docker.errors

    tags = [wanted] if wanted else [image_mod.image_tag(method=m)
                                    for m in ("debootstrap", "registry")]
    for tag in tags:
        try:
            client.images.get(tag)
            return tag
        except docker.errors.ImageNotFound:
            continue
    present = [t for img in client.images.list() for t in img.tags]
    present = [t.removeprefix("localhost/").removeprefix("docker.io/library/") for t in present]
    raise SandboxError(image_mod.missing_image_message(tags[0], present))


class _Channel:
    """One attached container: send a request line, read frames until the answer."""

    def __init__(self, sock) -> None:
        self.raw: socket.socket = getattr(sock, "_sock", sock)
        self.buf = b""
        self.stdout = b""
        self.stderr = b""

    def send(self, data: bytes) -> None:
        self.raw.sendall(data)

    def close_input(self) -> None:
        with contextlib.suppress(OSError):
            self.raw.shutdown(socket.SHUT_WR)

    def _split(self) -> bool:
        """Move complete multiplexed frames (8-byte header: stream, 0, 0, 0, size) from the
        raw buffer to stdout/stderr; whether any was complete."""
        moved = False
        while len(self.buf) >= 8:
            stream, size = self.buf[0], struct.unpack(">I", self.buf[4:8])[0]
            if len(self.buf) < 8 + size:
                break
            payload, self.buf = self.buf[8:8 + size], self.buf[8 + size:]
            if stream == 2:
                self.stderr = (self.stderr + payload)[-65536:]
            else:
                self.stdout += payload
            moved = True
        return moved

    def _frame(self, deadline: float) -> bool:
        """Read until at least one more frame is complete; False when the stream ended."""
        while not self._split():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.raw.settimeout(left)
            chunk = self.raw.recv(1 << 20)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def answer(self, deadline: float, nonce: str, max_bytes: int) -> Answer | None:
        """The guest's answer to the request sent with ``nonce`` (or why the line read is
        not it); None if the stream ended first."""
        while True:
            answer, self.stdout = read_answer(self.stdout, nonce, max_bytes)
            if answer is not None:
                return answer
            if not self._frame(deadline):
                return None

    def stray(self) -> bool:
        """Whether anything arrived on stdout since the last answer. Nothing genuine can:
        the guest speaks only when asked. A stream that ended counts as stray too."""
        try:
            self.raw.setblocking(False)
            try:
                chunk = self.raw.recv(1 << 16)
            finally:
                self.raw.setblocking(True)
        except (BlockingIOError, InterruptedError):
            chunk = None
        except OSError:
            return True
        if chunk == b"":
            return True
        self.buf += chunk or b""
        self._split()
        return bool(self.stdout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.raw.close()


class ContainerSandbox:
    """Runs each spec in a fresh container, or in one warm container per sandbox object."""

    name = "container"

    def __init__(self, config: ContainerConfig | None = None, client=None) -> None:
        self.config = config or ContainerConfig()
        self.client = client or connect(self.config.base_url)
        self.image = resolve_image(self.client, self.config.image)
        self._warm: tuple[object, _Channel, tuple] | None = None
        self._lock = threading.Lock()  # one request at a time on the warm channel
        try:
            self._seccomp: bytes | None = seccomp_mod.program()
            self._seccomp_note = "mmw's seccomp filter on each run, on top of the engine's"
        except seccomp_mod.SeccompUnavailable as exc:
            self._seccomp = None
            self._seccomp_note = f"engine's default seccomp profile only ({exc})"

    def guarantees(self) -> Guarantees:
        return Guarantees(
            backend="container", isolated=True, network="none",
            filesystem="image read-only (no host paths), tmpfs work dir",
            memory="cgroup (memory = memory+swap)", pids="cgroup pids limit",
            process_tree_killed=True,
            notes=("runs as uid 65534 with all capabilities dropped and no-new-privileges",
                   self._seccomp_note + " (no ptrace, io_uring, bpf, nested namespaces, "
                   "mounts, SysV IPC)",
                   "answers are authenticated per request; a forged line fails the run",
                   "shares the host kernel (a kernel exploit escapes)") + (
                   ("warm: one container serves many runs; the guest kills every leftover "
                    "process and empties /sandbox, /tmp, /var/tmp, /dev/shm and /dev/mqueue "
                    "between runs",
                    "warm: each run is a fork of the same guest, so it can read what earlier "
                    "runs of this sandbox left in the guest's memory (their requests); use "
                    "cold mode where runs must not see each other",
                    ) if self.config.warm else ()),
        )

    def _create(self, spec: RunSpec):
        from docker.types import Ulimit

        lim = spec.limits
        preload = ",".join(self.config.preload) if self.config.warm else ""
        mem = lim.memory_bytes + _GUEST_HEADROOM + (_PRELOAD_HEADROOM if preload else 0)
        host_config = self.client.api.create_host_config(
            network_mode="none", mem_limit=mem, memswap_limit=mem,
            pids_limit=lim.pids + _GUEST_PIDS, read_only=True,
            tmpfs={"/sandbox": f"size={lim.workdir_bytes},mode=1777",
                   "/tmp": "size=16m,mode=1777"},
            cap_drop=["ALL"], security_opt=["no-new-privileges"],
            ulimits=[Ulimit(name="nofile", soft=1024, hard=1024),
                     Ulimit(name="nproc", soft=1000, hard=1000),
                     Ulimit(name="core", soft=0, hard=0)],
            nano_cpus=int(self.config.cpus * 1e9), init=False,
        )
        c = self.client.api.create_container(
            self.image, command=["python3", "-m", "sandbox.guest"], user="65534:65534",
            working_dir="/sandbox", stdin_open=True, tty=False, network_disabled=True,
            environment={"PYTHONPATH": "/opt/mmw", "PYTHONDONTWRITEBYTECODE": "1",
                         "MMW_GUEST_PRELOAD": preload},
            host_config=host_config, labels={"mmw.sandbox": "1"},
        )
        cid = c["Id"]
        sock = self.client.api.attach_socket(
            cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        self.client.api.start(cid)
        return cid, _Channel(sock)

    def _remove(self, cid) -> None:
        import docker.errors

        # Podman answers 500 while its own cleanup of a just-exited container runs: retry.
        for attempt in range(20):
            try:
                self.client.api.remove_container(cid, force=True)
                return
            except docker.errors.NotFound:
                return
            except Exception:
                time.sleep(0.05 * (attempt + 1))

    def _warm_channel(self, spec: RunSpec):
        key = (spec.limits.memory_bytes, spec.limits.pids, spec.limits.workdir_bytes)
        if self._warm is not None and (self._warm[2] != key or self._warm[1].stray()):
            self.close()  # other container-level limits, or a channel with stray bytes on it
        if self._warm is None:
            cid, ch = self._create(spec)
            self._warm = (cid, ch, key)
        return self._warm[0], self._warm[1]

    def run(self, spec: RunSpec) -> RunResult:
        if not self.config.warm:
            return self._run(spec)
        with self._lock:
            return self._run(spec)

    def _run(self, spec: RunSpec) -> RunResult:
        g = self.guarantees()
        start = time.monotonic()
        cid = None
        ch: _Channel | None = None
        nonce = new_nonce()
        try:
            if self.config.warm:
                cid, ch = self._warm_channel(spec)
            else:
                cid, ch = self._create(spec)
            ch.send(encode_request(spec, nonce, self._seccomp))
            if not self.config.warm:
                ch.close_input()
            deadline = time.monotonic() + spec.limits.wall_s + self.config.start_timeout_s
            answer = ch.answer(deadline, nonce, max_answer_bytes(spec.limits))
        except TimeoutError:
            self._discard(cid, ch)
            return failed_result(self.name, g, "the in-container guest stopped answering; "
                                 "container killed", time.monotonic() - start)
        except Exception as exc:
            self._discard(cid, ch)
            return failed_result(self.name, g, f"{type(exc).__name__}: {exc}",
                                 time.monotonic() - start)
        if answer is not None and answer.forged:
            self._discard(cid, ch)  # never ask a channel that carried a forged line again
            return failed_result(self.name, g, f"{answer.error}; container removed",
                                 time.monotonic() - start)
        if not self.config.warm or answer is None:
            oom = self._oom_killed(cid)
            self._discard(cid, ch)
        else:
            oom = False
        wall = time.monotonic() - start
        if answer is None or answer.payload is None:
            detail = ch.stderr.decode("utf-8", "replace")[-2000:]
            if oom:
                return RunResult(
                    exit_code=None, signal=9, timed_out=False, limit_hit=LimitHit.MEMORY,
                    stdout="", stderr=detail, stdout_truncated=False, stderr_truncated=False,
                    files={}, wall_s=wall, backend=self.name, guarantees=g)
            return failed_result(self.name, g, f"container ended without an answer: {detail}",
                                 wall)
        result = decode_answer(answer.payload, self.name, g, wall, oom_killed=oom)
        if result.error is not None and self.config.warm:
            self._discard(cid, ch)  # a guest that failed is replaced, not trusted again
        return result

    def _oom_killed(self, cid) -> bool:
        try:
            return bool(self.client.api.inspect_container(cid)["State"].get("OOMKilled"))
        except Exception:
            return False

    def _discard(self, cid, ch: _Channel | None) -> None:
        if ch is not None:
            ch.close()
        if cid is not None:
            self._remove(cid)
        if self._warm is not None and self._warm[0] == cid:
            self._warm = None

    def close(self) -> None:
        if self._warm is not None:
            cid, ch, _ = self._warm
            self._warm = None
            ch.close()
            self._remove(cid)

    def __enter__(self) -> ContainerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
