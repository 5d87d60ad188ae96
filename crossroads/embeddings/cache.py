"""An on-disk embedding cache keyed by text hash, one file per dataset name."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from crossroads.embeddings.embedder import Embedder
from crossroads.embeddings.export import MODEL_NAME
from crossroads.paths import data_dir

if TYPE_CHECKING:
    import numpy as np


def text_key(text: str) -> str:
    """The cache key of one text (sha1 of its UTF-8 bytes)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Embeds texts once and keeps the vectors in
    ``<data_dir>/embeddings/<name>.<model>[.<window>].npz``.

    The window tag (e.g. ``ht64-192``) tells apart vectors of long texts read differently;
    vectors of the first 256 tokens keep the plain name. Only texts not yet in the file are
    embedded; the file is rewritten atomically.
    """

    def __init__(self, name: str, embedder: Embedder | None = None, root: Path | None = None):
        self.name = name
        self.embedder = embedder or Embedder()
        self.root = root

    @property
    def path(self) -> Path:
        """The cache file."""
        tag = getattr(self.embedder, "window_tag", "head256")
        return self._file("" if tag == "head256" else f".{tag}")

    def _file(self, suffix: str) -> Path:
        root = self.root if self.root is not None else data_dir() / "embeddings"
        return Path(root) / f"{self.name}.{MODEL_NAME}{suffix}.npz"

    def _from_head_file(self, texts: dict[str, str]) -> dict[str, np.ndarray]:
        """Vectors of texts that fit in the window whole, from the plain (head) file: every
        window reads such a text alike, so only the long ones need embedding again."""
        import numpy as np

        head = self._file("")
        fits = getattr(self.embedder, "fits", None)
        if head == self.path or fits is None or not head.is_file() or not texts:
            return {}
        with np.load(head) as data:
            rows = {k: i for i, k in enumerate(data["keys"].tolist())}
            known = [k for k in texts if k in rows]
            whole = [k for k, ok in zip(known, fits([texts[k] for k in known]), strict=True) if ok]
            vectors = data["vectors"][[rows[k] for k in whole]] if whole else []
        return dict(zip(whole, vectors, strict=True))

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Vectors for ``texts`` (cached or freshly embedded), row for row."""
        import numpy as np

        keys = [text_key(t) for t in texts]
        known: dict[str, int] = {}
        vectors = np.zeros((0, self.embedder.dimension), dtype=np.float32)
        if self.path.is_file():
            with np.load(self.path) as data:
                vectors = data["vectors"]
                known = {k: i for i, k in enumerate(data["keys"].tolist())}
        missing = list(dict.fromkeys(k for k in keys if k not in known))
        if missing:
            wanted = set(missing)
            first = {k: t for k, t in zip(keys, texts, strict=True) if k in wanted}
            reused = self._from_head_file(first)
            missing = [k for k in missing if k not in reused]
            fresh = self.embedder.encode([first[k] for k in missing], progress=progress)
            order = [*reused, *missing]
            known.update({k: len(vectors) + i for i, k in enumerate(order)})
            parts = [vectors, *([np.stack(list(reused.values()))] if reused else []), fresh]
            vectors = np.concatenate(parts)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp.npz")
            all_keys = np.array(sorted(known, key=known.__getitem__))
            np.savez(tmp, keys=all_keys, vectors=vectors)
            tmp.replace(self.path)
        return vectors[[known[k] for k in keys]]
