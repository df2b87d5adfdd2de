"""Secret redaction before any text leaves for the cloud.

:func:`redact` replaces each secret with ``[REDACTED:<kind>]`` and says how many it replaced
and of which kinds; it never logs or returns the secrets themselves.

Kinds, in the order they are tried (an earlier kind wins where two overlap):

- ``private_key``: a whole PEM private key block; an unterminated block is redacted to the
  end of the text (fail closed).
- ``aws_access_key``: AWS access key ids (``AKIA``/``ASIA``/... + 16 characters).
- ``aws_secret_key``: the value of an ``aws_secret_access_key`` style assignment.
- ``github_token`` (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``, ``github_pat_``),
  ``slack_token`` (``xoxa-``, ``xoxb-``, ``xoxp-``, ``xoxr-``, ``xoxs-``),
  ``anthropic_key`` (``sk-ant-``), ``openai_key`` (``sk-``, ``sk-proj-``, ...),
  ``stripe_key`` (``sk_live_``, ``rk_live_``, and their ``_test_`` twins),
  ``google_api_key`` (``AIza`` + 35), ``jwt`` (three base64url parts, ``eyJ...``).
- ``env_assignment``: the value assigned to a name that looks secret (a word of the name is
  password, passwd, pwd, passphrase, secret, token, credential(s), authorization, apikey, or
  the pair api/access/private/auth/signing/encryption + key). Only the value is replaced;
  the name stays, so the reader still sees what was there. Values are redacted when they
  are quoted literals (``password = "x"``, ``"token": "x"``, ``API_KEY: str = "x"``), or
  unquoted in ``.env`` form (``NAME=value``, no space around ``=``, optionally ``export``),
  or unquoted in YAML form (``name: value``) unless the value reads as a Python annotation
  (a builtin type, a capitalised name without digits, a dotted name, brackets or commas).
  So code such as ``token = get_token()`` or ``password: SecretStr`` is left alone.
- ``high_entropy``: any other run of base64/base64url characters of 20 or more whose
  Shannon entropy is close to that of random text of its length and that mixes upper case,
  lower case and digits.

Decisions, to avoid mangling ordinary code:

- Hex-only strings (git commit ids, checksums, UUIDs, colours) are not redacted by the
  entropy rule: they are everywhere in code and prose and are rarely secrets on their own.
  A hex secret behind a secret-looking name is still caught by ``env_assignment``.
- Identifiers, dotted names and paths are not redacted: a run made of dictionary-like words
  joined by ``_``, ``-``, ``/`` or ``.`` or in camelCase does not reach the entropy bar.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Redaction:
    """The redacted text, how many secrets were replaced, and one kind per replacement."""

    text: str
    count: int
    kinds: tuple[str, ...]


def marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


# (kind, pattern, group): the group's span is what gets replaced (0 = the whole match).
_TOKEN_PATTERNS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    (
        "private_key",
        re.compile(
            r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----"
            r"(?:.*?-----END \1PRIVATE KEY(?: BLOCK)?-----|.*\Z)",
            re.DOTALL,
        ),
        0,
    ),
    (
        "aws_access_key",
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)"
                   r"[A-Z0-9]{16}(?![A-Z0-9])"),
        0,
    ),
    (
        "aws_secret_key",
        re.compile(
            r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*(?::[^=\n]*)?[:=]\s*[\"']?"
            r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
        ),
        1,
    ),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_\w{22,251})"), 0),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,250}"), 0),
    ("anthropic_key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,250}"), 0),
    ("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,250}"), 0),
    ("stripe_key", re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,250}"), 0),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"), 0),
    (
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
        0,
    ),
)

_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "token", "credential", "credentials",
    "authorization", "apikey",
})
_PASSWORD_WORDS = frozenset({"password", "passwd", "pwd", "passphrase", "secret"})
_AUTH_SCHEME = re.compile(r"^(?:Bearer|Basic|Token|Bot)\s+", re.IGNORECASE)
_KEY_QUALIFIERS = frozenset({"api", "access", "private", "auth", "signing", "encryption"})

_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
# name [: annotation] = "value"   |   "name": "value"
_QUOTED = re.compile(
    rf"(?P<q1>[\"']?)(?P<name>{_NAME})(?P=q1)\s*(?::[^=\n\"']*=|:=|=|:)\s*"
    r"(?P<quote>[\"'])(?P<value>(?:\\.|(?!(?P=quote)).)+?)(?P=quote)"
)
# .env form: NAME=value, no spaces around '=', the rest of the line
_DOTENV = re.compile(
    rf"(?m)^(?:export[ \t]+)?(?P<name>{_NAME})=(?P<value>[^\s\"'#][^\s]*)[ \t]*$"
)
# YAML form: name: value, the rest of the line
_YAML = re.compile(rf"(?m)^[ \t]*(?P<name>{_NAME}):[ \t]+(?P<value>[^\s\"'#&*|>{{\[][^\s]*)[ \t]*$")
# a reference or template, not a value: ${VAR}, {token}, <|image_pad|>, %s, %(name)s
_TEMPLATE = re.compile(r"\$\{|\{[^{}]*\}|^<.*>$|%[sd(]")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
# what follows "name:" in a Python annotation rather than a YAML value
_ANNOTATION = re.compile(
    r"(?:str|bytes|int|float|bool|dict|list|tuple|set|object|None|Any)|[A-Z][A-Za-z]*|"
    r"[A-Za-z_]\w*(?:\.\w+)+|.*[,():\[\]]"
)

_CANDIDATE = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{20,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"[0-9a-fA-F-]+")
_WORDLIKE = re.compile(r"[A-Z][a-z]{2,}|[a-z]{3,}")
_SEQUENCES = ("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def redact(text: str) -> Redaction:
    """Replace every secret in ``text`` with ``[REDACTED:<kind>]``."""
    claimed: list[tuple[int, int, str]] = []

    def claim(start: int, end: int, kind: str) -> None:
        if start < end and not any(s < end and start < e for s, e, _ in claimed):
            claimed.append((start, end, kind))

    for kind, pattern, group in _TOKEN_PATTERNS:
        for match in pattern.finditer(text):
            claim(match.start(group), match.end(group), kind)
    for start, end in _secret_assignments(text):
        claim(start, end, "env_assignment")
    for match in _CANDIDATE.finditer(text):
        if _looks_random(match.group()):
            claim(match.start(), match.end(), "high_entropy")

    claimed.sort()
    parts: list[str] = []
    position = 0
    for start, end, kind in claimed:
        parts.append(text[position:start])
        parts.append(marker(kind))
        position = end
    parts.append(text[position:])
    return Redaction("".join(parts), len(claimed), tuple(kind for _, _, kind in claimed))


class Kept:
    """:func:`redact` with its results kept, for texts that come again: an agent resends its
    whole conversation every turn (a Claude Code system prompt of 38,000 characters took 16 ms
    to scan, each turn). A bounded LRU by a hash of the text; a text with nothing to redact
    (nearly all) keeps no copy of itself. Thread-safe."""

    def __init__(self, max_texts: int = 4096, max_copied_chars: int = 4_000_000) -> None:
        """``max_copied_chars``: the redacted copies kept, in characters all together (the
        oldest go first); a clean text keeps none."""
        self.max_texts, self.max_copied_chars = max_texts, max_copied_chars
        self._kept: OrderedDict[bytes, Redaction | None] = OrderedDict()
        self._copied = 0
        self._lock = threading.Lock()
        self.scanned = 0  # texts scanned (not found kept), for tests and benchmarks

    def __call__(self, text: str) -> Redaction:
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                found = self._kept[key]
                return found if found is not None else Redaction(text, 0, ())
        found = redact(text)
        size = len(found.text) if found.count else 0
        with self._lock:
            self.scanned += 1
            if key not in self._kept and size <= self.max_copied_chars:
                self._kept[key] = found if found.count else None
                self._copied += size
                while len(self._kept) > self.max_texts or self._copied > self.max_copied_chars:
                    _, old = self._kept.popitem(last=False)
                    self._copied -= len(old.text) if old is not None else 0
        return found


redact_kept = Kept()  # the process's own: what the router sends to the cloud


def is_secret_name(name: str) -> bool:
    """Whether an assigned name looks like it holds a secret (``DB_PASSWORD``, ``apiKey``)."""
    words = [w.lower() for w in _WORD.findall(name)]
    if not words:
        return False
    if words[-1] in _SECRET_WORDS:
        return True
    return len(words) >= 2 and words[-1] == "key" and words[-2] in _KEY_QUALIFIERS


def _secret_assignments(text: str) -> Iterator[tuple[int, int]]:
    checks: tuple[tuple[re.Pattern[str], Callable[[str, str], bool]], ...] = (
        (_QUOTED, _literal_ok),
        (_DOTENV, lambda _name, value: not _TEMPLATE.search(value)),
        (_YAML, lambda _name, value: not _ANNOTATION.fullmatch(value)),
    )
    for pattern, value_ok in checks:
        for match in pattern.finditer(text):
            name, value = match.group("name"), match.group("value")
            if is_secret_name(name) and value_ok(name, value):
                yield match.start("value"), match.end("value")


def _literal_ok(name: str, value: str) -> bool:
    """A quoted value worth redacting: not a template, no spaces (bar an auth scheme), and,
    unless the name says password or secret, at least 8 characters (``pad_token = "[PAD]"``
    in tokenizer code is not a secret), and not an environment variable's name."""
    if _TEMPLATE.search(value) or _ENV_NAME.fullmatch(value):
        return False
    if re.search(r"\s", _AUTH_SCHEME.sub("", value)):
        return False
    words = {w.lower() for w in _WORD.findall(name)}
    return len(value) >= (1 if words & _PASSWORD_WORDS else 8)


def shannon_entropy(token: str) -> float:
    """Bits per character of ``token``'s own character distribution."""
    if not token:
        return 0.0
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in Counter(token).values())


def _looks_random(token: str) -> bool:
    if _HEX.fullmatch(token):
        return False
    if not (
        any(c.isdigit() for c in token)
        and any(c.isupper() for c in token)
        and any(c.islower() for c in token)
    ):
        return False
    # Mostly words (camelCase, snake_case, paths): an identifier, not a key.
    in_words = sum(len(word) for word in _WORDLIKE.findall(token))
    if in_words >= 0.5 * len(token):
        return False
    if any(seq[i : i + 5] in token for seq in _SEQUENCES for i in range(len(seq) - 4)):
        return False  # an alphabet or a run like "abcde": a character class, not a key
    n = min(len(token), 64)
    return shannon_entropy(token) >= 0.85 * math.log2(n)
