"""Sentence embeddings with onnxruntime: ``Embedder().encode(texts) -> (n, 384) float32``.

Thread-safety: after ``load()`` returns, ``encode`` may be called from several threads at
once (onnxruntime's ``InferenceSession.run`` and the tokenizers ``Tokenizer.encode_batch`` are
both safe for concurrent calls); ``load()`` itself is guarded by a lock, so concurrent first
calls build the session once. ``encode`` is blocking CPU work: from async code call it via
``asyncio.to_thread`` or an executor, ideally with micro-batches.

Dynamic int8 quantization scales activations per batch, so a text's vector depends slightly
on its batch-mates (cosine >= ~0.98 between batch sizes 1 and 64; cosine ~0.99 to fp32).

One model per process: every ``Embedder`` of the same model directory (and thread count)
shares one onnxruntime session and tokenizer (:func:`load_model`), so the embedding signal,
the learned signals and the learned routers load MiniLM once. An ``Embedder`` itself is a
light view: which model, how long a window, and which part of a long text it reads.

Long texts: the encoder reads ``max_length`` tokens (256). ``window`` chooses which:
``head`` (the first ones), ``tail`` (the last ones) or ``head_tail`` (the default: the
first ``head_tokens`` and the last ``max_length - head_tokens``), because few-shot prompts
and pasted documents put the question at the end.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossroads.embeddings.export import MODEL_NAME, ONNX_FILE, export_minilm
from crossroads.paths import data_dir
from crossroads.types import EmbeddingWindow as Window

if TYPE_CHECKING:
    import numpy as np

WINDOWS: tuple[Window, ...] = ("head", "tail", "head_tail")
DEFAULT_WINDOW: Window = "head_tail"
DEFAULT_HEAD_TOKENS = 64
# Before tokenizing, a long text is cut to this many characters per kept end (a token covers
# at least one character), so a 100k-token prompt costs no more than a few thousand.
CHARS_PER_TOKEN_BOUND = 16


@dataclass(frozen=True)
class LoadedModel:
    """One loaded encoder: the onnxruntime session and the tokenizer (no truncation, no
    padding: :class:`Embedder` cuts and pads), and the longest input it was trained on."""

    path: str
    session: Any
    tokenizer: Any
    max_seq_length: int


_models: dict[tuple[str, int], LoadedModel] = {}
_models_lock = threading.Lock()
_sessions_built = 0


def load_model(path: Path, intra_op_threads: int = 1) -> LoadedModel:
    """The process's one session of the exported model at ``path``, built on first use."""
    global _sessions_built
    key = (str(path.resolve()), intra_op_threads)
    model = _models.get(key)
    if model is not None:
        return model
    with _models_lock:
        model = _models.get(key)
        if model is not None:
            return model
        import onnxruntime as ort
        from tokenizers import Tokenizer

        manifest = json.loads((path / "manifest.json").read_text())
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(path / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )
        # The first run of a session allocates its buffers (100-300 ms here): do it now, so
        # that the first request's signals do not run past their time budget.
        import numpy as np

        ids = np.asarray([tokenizer.encode("warm up").ids], dtype=np.int64)
        session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        model = _models[key] = LoadedModel(
            key[0], session, tokenizer, int(manifest["max_seq_length"])
        )
        _sessions_built += 1
    return model


def sessions_built() -> int:
    """How many encoder sessions this process has built (one per model directory)."""
    return _sessions_built


def forget_models() -> None:
    """Drop the loaded models (tests that swap model directories; the next use reloads)."""
    with _models_lock:
        _models.clear()


def window_ids(ids: list[int], max_length: int, window: Window, head_tokens: int) -> list[int]:
    """The token ids the encoder reads of ``ids`` (``[CLS] ... [SEP]``): all of them when they
    fit in ``max_length``, else the ``window``'s part, keeping ``[CLS]`` first and ``[SEP]``
    last.

    >>> window_ids([101, 1, 2, 3, 4, 5, 102], 5, "head_tail", 2)
    [101, 1, 4, 5, 102]
    """
    if len(ids) <= max_length:
        return ids
    if window == "head":
        return [*ids[: max_length - 1], ids[-1]]
    if window == "tail":
        return [ids[0], *ids[len(ids) - max_length + 1 :]]
    head = min(max(head_tokens, 1), max_length - 1)
    return [*ids[:head], *ids[len(ids) - (max_length - head) :]]


def clip_text(text: str, max_length: int, window: Window) -> str:
    """``text`` without the middle (or the end, or the start) that the window cannot reach, so
    tokenizing a huge prompt stays cheap; texts short enough come back unchanged."""
    keep = max_length * CHARS_PER_TOKEN_BOUND
    if len(text) <= 2 * keep:
        return text
    if window == "head":
        return text[:keep]
    if window == "tail":
        return text[-keep:]
    return f"{text[:keep]}\n{text[-keep:]}"


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
        window: Window = DEFAULT_WINDOW,
        head_tokens: int = DEFAULT_HEAD_TOKENS,
    ) -> None:
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.max_length = max_length
        self.intra_op_threads = intra_op_threads
        self.export_if_missing = export_if_missing
        self.window = window
        self.head_tokens = head_tokens
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
    def window_tag(self) -> str:
        """Names what this embedder reads of a long text, e.g. ``head256`` or ``ht64-192``."""
        if self.window == "head":
            return f"head{self.max_length}"
        if self.window == "tail":
            return f"tail{self.max_length}"
        head = min(max(self.head_tokens, 1), self.max_length - 1)
        return f"ht{head}-{self.max_length - head}"

    @property
    def dimension(self) -> int:
        """Length of one embedding vector (384 for MiniLM)."""
        return 384

    def is_available(self) -> bool:
        """True if the exported model is on disk (no export needed)."""
        return (self.resolved_model_dir / ONNX_FILE).is_file()

    def load(self) -> Embedder:
        """Attach the process's session of the model (exporting once if needed); idempotent."""
        if self._session is not None:
            return self
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}; got {self.window!r}")
        with self._lock:
            if self._session is not None:
                return self
            path = self.resolved_model_dir
            if not (path / ONNX_FILE).is_file():
                if not self.export_if_missing:
                    raise FileNotFoundError(
                        f"No exported embedding model at {path}. Run the export once "
                        "(crossroads.embeddings.export_minilm) or set export_if_missing=True."
                    )
                export_minilm(path)
            model = load_model(path, self.intra_op_threads)
            self._length = min(self.max_length, model.max_seq_length)
            self._tokenizer = model.tokenizer
            self._session = model.session
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
            ids, mask = self._inputs([texts[i] for i in idx])
            (vectors,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[idx] = vectors
        return out

    def fits(self, texts: list[str]) -> list[bool]:
        """Whether each text fits in the window whole (then every window reads it alike)."""
        self.load()
        clipped = [clip_text(t, self._length, self.window) or " " for t in texts]
        return [len(e.ids) <= self._length for e in self._tokenizer.encode_batch(clipped)]

    def _inputs(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Padded ``input_ids`` and ``attention_mask`` of the window of each text."""
        import numpy as np

        length, window = self._length, self.window
        clipped = [clip_text(t, length, window) or " " for t in texts]
        rows = [
            window_ids(e.ids, length, window, self.head_tokens)
            for e in self._tokenizer.encode_batch(clipped)
        ]
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask

    def __getstate__(self) -> dict[str, Any]:
        # Pickled inside router artifacts: keep the parameters, not the session.
        state = self.__dict__.copy()
        state.update(_session=None, _tokenizer=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Artifacts pickled before windows existed were fitted on the head of each text.
        self.__dict__.update({"window": "head", "head_tokens": DEFAULT_HEAD_TOKENS, **state})
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"Embedder(model_dir={self.model_dir!r}, batch_size={self.batch_size}, "
            f"window={self.window!r})"
        )
