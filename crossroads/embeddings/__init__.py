"""Prompt embeddings for routers: all-MiniLM-L6-v2 as int8 ONNX, with an on-disk cache.

``Embedder`` embeds texts; ``EmbeddingCache`` keeps a dataset's vectors on disk so an
evaluation embeds each prompt once; ``export_minilm`` builds the ONNX model (needs torch).
"""

from crossroads.embeddings.cache import EmbeddingCache
from crossroads.embeddings.embedder import Embedder
from crossroads.embeddings.export import ExportUnavailableError, export_minilm
from crossroads.embeddings.hashing import HashingEmbedder
from crossroads.paths import data_dir

__all__ = [
    "Embedder",
    "EmbeddingCache",
    "ExportUnavailableError",
    "HashingEmbedder",
    "data_dir",
    "export_minilm",
]
