"""A real OpenAI-compatible inference server: llama.cpp, through llama-cpp-python's server.

Not a fake, but kept with them: like them it is a server the tests start for GPM to talk to.
tests/llm/test_llamacpp.py starts it once per module with ``with llama_server(workdir) as url:``
and puts the real proxy in front of it.

It serves the tiny random-weight model the tests write (tests/fakes/tiny_model.py) on a free
loopback port, one request at a time (``interrupt_requests`` off, so a second request waits for
the first instead of cutting it short).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import free_port, get_json, running, wait_for
from tests.fakes.tiny_model import N_CTX, write_tiny_llama

MODEL_ALIAS = "tiny-llama"


@contextmanager
def llama_server(workdir: Path) -> Iterator[str]:
    """Start the server on the model written into ``workdir``; yield its base URL."""
    model = write_tiny_llama(workdir / "tiny-llama.gguf")
    port = free_port()
    log = workdir / "llama-server.log"
    argv = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", MODEL_ALIAS,
        "--n_ctx", str(N_CTX), "--n_threads", "1", "--interrupt_requests", "False",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with running(argv, log) as proc:

        def ready() -> bool:
            if proc.poll() is not None:
                text = log.read_text(errors="replace")
                raise RuntimeError(f"llama.cpp server exited with {proc.returncode}:\n{text}")
            return bool(get_json(url + "/v1/models").get("data"))

        wait_for(ready, timeout=60.0, what="the llama.cpp server to load its model")
        yield url
