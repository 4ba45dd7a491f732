"""Tokenise text into characters or words and map tokens to integer ids with a ``Vocabulary``.

A vocabulary is built from training texts only; tokens it has not seen become ``<unk>``. It saves as plain
JSON (``to_dict`` / ``from_dict``), so a model folder that holds one never unpickles anything.

Example::

    vocab = Vocabulary.build(["3 March 2021", "Mar 3, 2021"], tokens="char")
    ids = vocab.encode("3 Mar")              # [.., .., .., .., ..] without <bos>/<eos>
    vocab.decode(ids)                        # "3 Mar"
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Literal

from lstmkit.errors import DataError

__all__ = ["Vocabulary", "tokenize", "PAD", "BOS", "EOS", "UNK", "SPECIALS"]

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
TOKENS = ("char", "word")


def tokenize(text: str, tokens: Literal["char", "word"]) -> list[str]:
    """``text`` as a list of characters, or of whitespace-separated words."""
    if tokens == "char":
        return list(text)
    if tokens == "word":
        return text.split()
    raise ValueError(f'tokenize: tokens: expected "char" or "word", got {tokens!r}')


class Vocabulary:
    """A mapping between tokens and ids: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3, then the tokens
    seen in training, most frequent first (ties in first-seen order).

    Args:
        itos: every token, indexed by id, the four specials first.
        tokens: ``"char"`` or ``"word"``, how texts are split.
    """

    def __init__(self, itos: list[str], tokens: Literal["char", "word"] = "char") -> None:
        if tokens not in TOKENS:
            raise DataError(f'vocabulary tokens: expected "char" or "word", got {tokens!r}')
        if tuple(itos[:4]) != SPECIALS:
            raise DataError(f"vocabulary: expected the specials {list(SPECIALS)} first, got {itos[:4]}")
        if len(set(itos)) != len(itos):
            raise DataError("vocabulary: expected distinct tokens, got duplicates")
        self.itos = list(itos)
        self.tokens = tokens
        self.stoi = {token: index for index, token in enumerate(self.itos)}

    @classmethod
    def build(cls, texts: Iterable[str], tokens: Literal["char", "word"] = "char", min_count: int = 1) -> Vocabulary:
        """The vocabulary of ``texts``, keeping tokens seen at least ``min_count`` times."""
        counts = Counter()
        for text in texts:
            counts.update(tokenize(text, tokens))
        kept = [t for t, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n >= min_count and t not in SPECIALS]
        return cls([*SPECIALS, *kept], tokens)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``'s tokens (unknown ones as ``<unk>``), without ``<bos>`` or ``<eos>``."""
        return [self.stoi.get(token, UNK) for token in tokenize(text, self.tokens)]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``, stopping at ``<eos>`` and skipping ``<pad>`` and ``<bos>``."""
        return self.join(self.token_list(ids))

    def token_list(self, ids: Iterable[int]) -> list[str]:
        """The tokens of ``ids`` up to ``<eos>``, without ``<pad>`` and ``<bos>``."""
        out = []
        for index in ids:
            index = int(index)
            if index == EOS:
                break
            if index in (PAD, BOS):
                continue
            out.append(self.itos[index] if 0 <= index < len(self.itos) else SPECIALS[UNK])
        return out

    def join(self, tokens: list[str]) -> str:
        return ("" if self.tokens == "char" else " ").join(tokens)

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "itos": list(self.itos)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        try:
            return cls(list(data["itos"]), data["tokens"])
        except (KeyError, TypeError) as exc:
            raise DataError(f"vocabulary: expected an object with 'tokens' and 'itos', got {exc}") from None
