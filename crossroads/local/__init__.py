"""Real local models that ship in PyPI packages, served by managed llama.cpp processes.

``LocalModelPool(["smollm2-135m-instruct", "gemma-3-270m"])`` starts one
``llama_cpp.server`` per model on a free loopback port; ``await pool.start()`` returns
``{model name: base URL}``. Nothing here imports llama_cpp: the servers are subprocesses.
"""

from crossroads.local.catalog import (
    LOCAL_MODELS,
    LocalModel,
    local_model,
    locate_model_file,
    missing_requirements,
)
from crossroads.local.paths import data_dir
from crossroads.local.pool import LocalModelPool
from crossroads.local.server import LocalModelServer

__all__ = [
    "LOCAL_MODELS",
    "LocalModel",
    "LocalModelPool",
    "LocalModelServer",
    "data_dir",
    "local_model",
    "locate_model_file",
    "missing_requirements",
]
