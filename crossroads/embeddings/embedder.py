"""Sentence embeddings with onnxruntime: ``Embedder().encode(texts) -> (n, 384) float32``.

Thread-safety: after ``load()`` returns, ``encode`` may be called from several threads at
once (onnxruntime's ``InferenceSession.run`` and the tokenizers ``Tokenizer.encode_batch`` are
both safe for concurrent calls); ``load()`` itself is guarded by a lock, so concurrent first
calls build the session once. ``encode`` is blocking CPU work: from async code call it via
``asyncio.to_thread`` or an executor, ideally with micro-batches.

Dynamic int8 quantization scales activations per batch, so a text's vector depends slightly
on its batch-mates (cosine >= ~0.98 between batch sizes 1 and 64; cosine ~0.99 to fp32).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossroads.embeddings.export import MODEL_NAME, ONNX_FILE, export_minilm
from crossroads.paths import data_dir

if TYPE_CHECKING:
    import numpy as np


class Embedder:
    """all-MiniLM-L6-v2 (int8 ONNX, mean pooled, L2-normalised) on CPU.

    The constructor stores parameters only; ``load()`` (or the first ``encode``) locates the
    exported model under ``model_dir`` (default ``<data_dir>/models/all-MiniLM-L6-v2``),
    exporting it once if absent and ``export_if_missing`` is true.

    >>> Embedder().encode(["hello world"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        batch_size: int = 64,
        max_length: int = 256,
        intra_op_threads: int = 1,
        export_if_missing: bool = True,
    ) -> None:
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.max_length = max_length
        self.intra_op_threads = intra_op_threads
        self.export_if_missing = export_if_missing
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def resolved_model_dir(self) -> Path:
        """The directory holding ``model.int8.onnx``, ``tokenizer.json`` and ``manifest.json``."""
        if self.model_dir is not None:
            return Path(self.model_dir).expanduser()
        return data_dir() / "models" / MODEL_NAME

    @property
    def dimension(self) -> int:
        """Length of one embedding vector (384 for MiniLM)."""
        return 384

    def is_available(self) -> bool:
        """True if the exported model is on disk (no export needed)."""
        return (self.resolved_model_dir / ONNX_FILE).is_file()

    def load(self) -> Embedder:
        """Build the onnxruntime session and tokenizer (exporting once if needed); idempotent."""
        if self._session is not None:
            return self
        with self._lock:
            if self._session is not None:
                return self
            import onnxruntime as ort
            from tokenizers import Tokenizer

            path = self.resolved_model_dir
            if not (path / ONNX_FILE).is_file():
                if not self.export_if_missing:
                    raise FileNotFoundError(
                        f"No exported embedding model at {path}. Run the export once "
                        "(crossroads.embeddings.export_minilm) or set export_if_missing=True."
                    )
                export_minilm(path)
            manifest = json.loads((path / "manifest.json").read_text())
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            tokenizer.enable_truncation(min(self.max_length, int(manifest["max_seq_length"])))
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.intra_op_threads
            options.inter_op_num_threads = 1
            self._tokenizer = tokenizer
            self._session = ort.InferenceSession(
                str(path / ONNX_FILE), options, providers=["CPUExecutionProvider"]
            )
        return self

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Embed ``texts`` in batches; returns an (n, 384) float32 array of unit vectors."""
        import numpy as np

        self.load()
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        # Sorting by length keeps padding (and so time) low in each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        starts = range(0, len(texts), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="embedding", unit="batch")
        for start in starts:
            idx = order[start : start + self.batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] or " " for i in idx])
            ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
            (vectors,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[idx] = vectors
        return out

    def __getstate__(self) -> dict[str, Any]:
        # Pickled inside router artifacts: keep the parameters, not the session.
        state = self.__dict__.copy()
        state.update(_session=None, _tokenizer=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Embedder(model_dir={self.model_dir!r}, batch_size={self.batch_size})"
