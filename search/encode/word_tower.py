"""The text model (search/encode/sentences.py) as an ONNX graph, float32 and int8, run without torch:
the `tokenizers` library's WordPiece, ONNX Runtime, then the model's mean pooling and L2 norm in numpy.

all-MiniLM-L6-v2 is the only real model with real weights that can be had here, so it is where int8 is
checked against float32 on real weights (`mmsearch bench text-int8`, docs/benchmarks.md): the cosine
of each sentence's int8 vector with sentence-transformers' own float32 one, and how often both rank the
same sentences first. A graph under MIN_COSINE is not to be used.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np

FP32, INT8, TOKENIZER = "text.fp32.onnx", "text.int8.onnx", "tokenizer.json"
MIN_COSINE = 0.99
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length; longer texts are cut, as sentence-transformers does


def export(model_folder: Path, out: Path) -> Path:
    """A sentence-transformers folder (a BERT-like transformer with mean pooling) as ONNX graphs in `out`:
    float32, and int8 (`quantize`)."""
    import torch
    from transformers import AutoModel

    pooling = json.loads((model_folder / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ValueError(f"{model_folder} does not pool by the mean of its tokens")
    out.mkdir(parents=True, exist_ok=True)
    model = AutoModel.from_pretrained(model_folder).eval()

    class Tokens(torch.nn.Module):  # the transformer's token vectors, by keyword as it wants them
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            given = {"input_ids": input_ids, "attention_mask": attention_mask}
            return self.model(**given, token_type_ids=token_type_ids).last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on tracing a Python model
        torch.onnx.export(
            Tokens(),
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            out / FP32,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["tokens"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "tokens": axes},
            opset_version=17,
            dynamo=False,
        )
    quantize(out / FP32, out / INT8)
    shutil.copy(model_folder / TOKENIZER, out / TOKENIZER)
    return out


def quantize(source: Path, target: Path, per_channel: bool = True) -> None:
    """int8 weights by ONNX Runtime's dynamic quantisation. Per channel (a scale for each output column)
    on all-MiniLM-L6-v2: cosine with float32 at least 0.983, same first neighbour for 92.9% of sentences;
    one scale per tensor: 0.900 and 78.8% (`mmsearch bench text-int8` measures both)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from mmsearch.encode.onnx_export import quiet_quantiser

    with quiet_quantiser():
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=per_channel)


class WordTower:
    """Unit float32 vectors for texts from one exported graph (FP32 or INT8)."""

    def __init__(self, folder: Path, graph: str = INT8, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(folder / graph), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer.encode_batch(texts)
        ids = np.array([b.ids for b in batch], np.int64)
        mask = np.array([b.attention_mask for b in batch], np.int64)
        tokens = self.session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        summed = (tokens * mask[:, :, None]).sum(axis=1)
        mean = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)
