"""Signal declarations, referenced by rules as ``kind:name``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from crossroads.config.base import _Strict, _tagged
from crossroads.types import EmbeddingWindow


class _SignalBase(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    timeout_ms: float = Field(50.0, gt=0)
    scope: Literal["all", "last_user"] = "all"


class _MatchSignalBase(_SignalBase):
    record_match: bool = Field(
        False,
        description="traces also record the first matched text (keys and personal data "
        "masked); by default they record only which rules matched and how often",
    )


class KeywordSignal(_MatchSignalBase):
    """Matches when any (or all) keywords occur; word boundaries and case are options."""

    kind: Literal["keyword"]
    keywords: list[str] = Field(min_length=1)
    match: Literal["any", "all"] = "any"
    case_sensitive: bool = False
    word_boundary: bool = True


class RegexSignal(_MatchSignalBase):
    """Matches when any (or all) regular expressions search successfully."""

    kind: Literal["regex"]
    patterns: list[str] = Field(min_length=1)
    match: Literal["any", "all"] = "any"
    case_sensitive: bool = False

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"patterns[{i}] {pattern!r} is not a valid regex: {exc}") from exc
        return patterns


class TokensSignal(_SignalBase):
    """Matches when the prompt's token count is in ``[min, max)``."""

    kind: Literal["tokens"]
    min: int = Field(0, ge=0)
    max: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> TokensSignal:
        if self.max is not None and self.max <= self.min:
            raise ValueError(f"max ({self.max}) must be greater than min ({self.min})")
        return self


class MetadataSignal(_SignalBase):
    """Matches on who is calling: API key name, the ``user`` field, or a request header."""

    kind: Literal["metadata"]
    source: Literal["key", "user", "header", "operation", "endpoint"]
    header: str | None = None
    values: list[str] = []
    pattern: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> MetadataSignal:
        if self.source == "header" and not self.header:
            raise ValueError("source 'header' needs 'header: <header-name>'")
        if not self.values and self.pattern is None:
            raise ValueError("give 'values' (exact matches) or 'pattern' (a regex)")
        return self


class HasCodeSignal(_SignalBase):
    """Matches when the request contains code (fences, or enough code-like lines)."""

    kind: Literal["has_code"]
    min_lines: int = Field(2, ge=1)


class EmbeddingSignal(_SignalBase):
    """Matches when the prompt is semantically close to one of ``exemplars``: cosine
    similarity of all-MiniLM-L6-v2 embeddings at least ``threshold``."""

    kind: Literal["embedding"]
    exemplars: list[str] = Field(min_length=1)
    threshold: float = Field(0.5, ge=-1, le=1)
    timeout_ms: float = Field(200.0, gt=0)
    scope: Literal["all", "last_user"] = "last_user"
    window: EmbeddingWindow = Field(
        "head_tail",
        description="what the encoder reads of a text longer than its 256 tokens: the first "
        "64 and last 192 tokens (head_tail), or only the first (head) or last (tail) 256",
    )


class LanguageSignal(_SignalBase):
    """The language of the prompt (ISO 639-1 code, e.g. ``de``) from an offline detector;
    matches when it is one of ``languages`` (any language when empty) with confidence at
    least ``min_confidence``. Needs ``pip install "crossroads[language]"``."""

    kind: Literal["language"]
    languages: list[str] = []
    min_confidence: float = Field(0.0, ge=0, le=1)
    detector: Literal["fasttext", "langid"] = "fasttext"
    scope: Literal["all", "last_user"] = "last_user"

    @field_validator("languages")
    @classmethod
    def _codes(cls, languages: list[str]) -> list[str]:
        for code in languages:
            if not re.fullmatch(r"[a-z]{2,3}", code):
                raise ValueError(f"{code!r} is not an ISO 639 code such as 'de' or 'fr'")
        return languages


PiiType = Literal[
    "email", "phone", "credit_card", "iban", "national_id", "ip_address", "api_key", "secret"
]


class PiiSignal(_SignalBase):
    """Personal data and secrets in the prompt, each confirmed by a validator (Luhn for
    cards, mod-97 for IBANs, issued ranges for SSNs, parsing for IPs, known key prefixes or
    high entropy for secrets). The value is how many were found of ``types`` (all by
    default); the detail counts them per type; neither ever holds the matched text. Matches
    from ``min_count`` findings."""

    kind: Literal["pii"]
    types: list[PiiType] = []
    min_count: int = Field(1, ge=1)


class BudgetSignal(_SignalBase):
    """Matches when the caller's tightest budget (its key's or its team's) has less than
    ``below`` of its amount left; the value is the remaining fraction (none without budgets)."""

    kind: Literal["budget"]
    below: float = Field(gt=0, le=1)


if TYPE_CHECKING:
    SignalConfig = (
        KeywordSignal
        | RegexSignal
        | TokensSignal
        | MetadataSignal
        | HasCodeSignal
        | EmbeddingSignal
        | LanguageSignal
        | PiiSignal
        | BudgetSignal
    )
else:
    from crossroads.registry import SIGNALS

    SignalConfig = _tagged(
        "kind",
        None,
        KeywordSignal,
        RegexSignal,
        TokensSignal,
        MetadataSignal,
        HasCodeSignal,
        EmbeddingSignal,
        LanguageSignal,
        PiiSignal,
        BudgetSignal,
        plugins=SIGNALS,
    )
