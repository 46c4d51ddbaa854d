"""The API's routes, one module per thing they serve: GPUs now, history, LLM traffic, alerts
and exports. Each is a thin ``APIRouter`` over the context (``gpm.api.deps``)."""
