"""Run the LLM proxy alone in a process of its own, for tests that measure the proxy's memory.

``python -m tests.llm.proxy_alone BACKEND_URL`` prints the port it listens on, then one JSON line
per recorded session (the /api/llm-sessions item shape).
"""

from __future__ import annotations

import asyncio
import json
import sys

from gpm.llm.proxy import LlmProxy
from gpm.model import LlmSession
from gpm.views import session_view


def _print_session(s: LlmSession) -> None:
    print(json.dumps(session_view(s)), flush=True)


async def main(backend_url: str) -> None:
    proxy = LlmProxy(backend_url, "127.0.0.1", 0, _print_session)
    await proxy.start()
    print(proxy.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
