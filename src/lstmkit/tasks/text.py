"""Raw text in, predictions out: classify texts, tag tokens and sample from a character LM.

A model trained on a text source keeps its tokenizer (vocabulary, level, lowercasing) as JSON in the model
folder's ``meta.json``; ``TextModel.load`` rebuilds it beside the network, so nothing else is needed.

Example::

    model = TextModel.load("runs/reviews/model")
    model.classify(["a fine film", "dull and far too long"])     # [{"label": ..., "probability": ...}, ...]
    TextModel.load("runs/ner/model").tag(["Ada lives in Paris"])  # [{"tokens": [...], "labels": [...]}]
    TextModel.load("runs/chars/model").generate("The ", length=80, temperature=0.8, seed=1)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from lstmkit.data.text import PAD_ID, UNK_ID, Tokenizer, pad_ids
from lstmkit.errors import DataError, ModelFolderError
from lstmkit.artifacts.model_folder import LoadedModel, load_model
from lstmkit.training.trainer import predict_outputs

__all__ = ["TextModel"]


@dataclass
class TextModel:
    """A loaded token model and the tokenizer it was trained with."""

    loaded: LoadedModel
    tokenizer: Tokenizer

    @classmethod
    def load(cls, folder: str | Path) -> TextModel:
        """Load a model folder written by ``lstmkit train`` on a text source (checked against its manifest)."""
        return cls.from_loaded(load_model(folder), folder)

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, folder: str | Path = "") -> TextModel:
        if "tokenizer" not in loaded.meta:
            raise ModelFolderError(f"model folder {folder}: holds no tokenizer (meta.json \"tokenizer\"); it was "
                                   "not trained on a text source, so it takes numeric inputs, not text")
        try:
            tokenizer = Tokenizer.from_dict(loaded.meta["tokenizer"])
        except DataError as exc:
            raise ModelFolderError(f"model folder {folder}: meta.json {exc}") from None
        return cls(loaded, tokenizer)

    @property
    def task(self) -> str:
        return self.loaded.config.model.task

    @property
    def label_names(self) -> list[str]:
        return self.loaded.label_names

    def tokens(self, texts: Sequence[str], where: str = "text input ") -> list[list[str]]:
        """Each text split as in training; DataError, naming ``{where}[i]``, for a text without tokens."""
        tokens = [self.tokenizer.split(text) for text in texts]
        for i, (text, toks) in enumerate(zip(texts, tokens)):
            if not toks:
                raise DataError(f"{where}[{i}]: expected at least one {self.tokenizer.level} token, got "
                                f"{text[:40]!r}")
        return tokens

    def _outputs(self, texts: Sequence[str]) -> tuple[torch.Tensor, list[list[str]]]:
        if not texts:
            raise DataError("text input: expected at least one text, got none")
        tokens = self.tokens(texts)
        x, lengths = pad_ids([self.tokenizer.encode(t) for t in tokens])
        return predict_outputs(self.loaded.module, x, lengths), tokens

    def classify(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """For each text: ``label``, its ``probability`` and ``probabilities`` of every label."""
        if self.task == "char-lm":
            raise DataError("a char-lm model continues text; use `lstmkit generate` (TextModel.generate)")
        outputs, _ = self._outputs(texts)
        if outputs.dim() != 2:
            raise DataError(f"classify: the {self.task} model labels every token; use tag()")
        probs = torch.softmax(outputs, dim=-1)  # (N, C)
        results = []
        for row in probs:
            best = int(row.argmax())
            results.append({"label": self.label_names[best], "probability": float(row[best]),
                            "probabilities": {n: float(p) for n, p in zip(self.label_names, row)}})
        return results

    def tag(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """For each text (tokens separated by whitespace): its ``tokens`` and one label per token."""
        if self.task == "char-lm":
            raise DataError("a char-lm model continues text; use `lstmkit generate` (TextModel.generate)")
        outputs, tokens = self._outputs(texts)
        if outputs.dim() != 3:
            raise DataError(f"tag: the {self.task} model labels whole texts; use classify()")
        best = outputs.argmax(-1)  # (N, L)
        return [{"tokens": list(text.split()) if self.tokenizer.level == "whitespace" else toks,
                 "labels": [self.label_names[int(i)] for i in best[n, : len(toks)]]}
                for n, (text, toks) in enumerate(zip(texts, tokens))]

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """``tag`` for a tagger, ``classify`` otherwise."""
        return self.tag(texts) if self.task == "tagger" else self.classify(texts)

    @torch.no_grad()
    def generate(self, prompt: str, length: int, temperature: float = 1.0, seed: int = 0) -> str:
        """Sample ``length`` tokens after ``prompt`` and return them (the prompt not included).

        The prompt is read once, step by step, into the LSTM's state; then each step samples a token from
        ``softmax(logits / temperature)`` (``temperature = 0``: the most likely token) and feeds it back as
        the next input, carrying the state, so every token costs one LSTM step. ``<pad>`` and ``<unk>`` are
        never sampled. The same ``seed`` gives the same text.
        """
        if self.task != "char-lm":
            raise DataError(f"generate: expected a char-lm model, got a {self.task} model")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise DataError(f"generate length: expected a non-negative integer, got {length!r}")
        if not temperature >= 0:
            raise DataError(f"generate temperature: expected a number >= 0, got {temperature!r}")
        ids = self.tokenizer.encode(prompt)
        if not ids:
            raise DataError("generate prompt: expected at least one character, got an empty prompt")
        module = self.loaded.module.eval()
        state = None
        for token in ids:  # read the prompt into the state
            logits, state = module.step(torch.tensor([token]), state)  # (1, V)
        generator = torch.Generator().manual_seed(seed)
        out: list[int] = []
        for _ in range(length):
            logits = logits.clone()
            logits[:, [PAD_ID, UNK_ID]] = float("-inf")
            if temperature == 0:
                token = logits.argmax(-1)  # (1,)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)  # (1, V)
                token = torch.multinomial(probs, 1, generator=generator)[:, 0]  # (1,)
            out.append(int(token))
            logits, state = module.step(token, state)
        return self.tokenizer.decode(out)
