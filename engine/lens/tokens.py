"""Stage 1, input and tokens: counts over the tokenization of the text.

The tokenizer (`engine.tokenizer`) is byte-level BPE (Sennrich et al. 2016; GPT-2: Radford et
al. 2019): a character can be split over several tokens, which `Tokenizer.group_characters`
reports as groups of positions.
"""

from __future__ import annotations

from engine.tokenizer import TokenGroup


def group_of_position(groups: list[TokenGroup], n_tokens: int) -> list[int]:
    """[n_tokens] ints: for each token position, the index of the character group (from
    `Tokenizer.group_characters`) it belongs to; -1 where no group covers it."""
    owner = [-1] * n_tokens
    for g_index, group in enumerate(groups):
        for pos in range(group.first, group.last + 1):
            owner[pos] = g_index
    return owner


def characters_per_token(text: str, n_tokens: int) -> float:
    """Characters of the text per token (higher means the tokenizer knows the text better);
    0 tokens count as 1, so an empty text gives 0.0."""
    return len(text) / max(1, n_tokens)


def article_words(text: str) -> list[str]:
    """The article's unit: whole words split on white space (`str.split`), one Word2Vec/GloVe
    vector each."""
    return text.split()


__all__ = ["article_words", "characters_per_token", "group_of_position"]
