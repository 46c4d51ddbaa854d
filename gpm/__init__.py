"""GPM: GPU and LLM monitor."""

__version__ = "0.1.0"
