"""A bag-of-words embedder (scikit-learn ``HashingVectorizer``): no model files, for tests and
as a cheap fallback. Same interface as ``Embedder``; far weaker on meaning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


class HashingEmbedder:
    """L2-normalised hashed word uni- and bigram counts, ``dimension`` wide; thread-safe."""

    def __init__(self, dimension: int = 256) -> None:
        self.dimension = dimension
        self._vectorizer: Any = None

    def load(self) -> HashingEmbedder:
        """Build the vectorizer (cheap); idempotent."""
        if self._vectorizer is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            self._vectorizer = HashingVectorizer(
                n_features=self.dimension, ngram_range=(1, 2), alternate_sign=False
            )
        return self

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """``(n, dimension)`` float32 unit vectors (zero vector for empty text)."""
        import numpy as np

        self.load()
        return np.asarray(self._vectorizer.transform(texts).toarray(), dtype=np.float32)
