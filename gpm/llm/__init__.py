"""The LLM side of GPM: a metering proxy in front of Ollama, its model poller, and demo traffic."""

from gpm.llm.demo import DemoBackend, DemoTraffic
from gpm.llm.proxy import LlmProxy
from gpm.llm.ps import ModelPoller

__all__ = ["DemoBackend", "DemoTraffic", "LlmProxy", "ModelPoller"]
