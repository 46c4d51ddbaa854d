"""Pick a few small top-level members out of a JSON object as it streams past.

The proxy meters a request from its body (``model``, ``stream``) without holding the body: a
100 MB chat request with images streams through in the chunks it arrived in, and this scanner
keeps only the members it was asked for, each up to a size cap. Long strings, where big bodies
spend their bytes, are skipped with one ``find`` per chunk, not a byte at a time.
"""

from __future__ import annotations

import json
import re
from typing import Any

_STRUCTURE = re.compile(rb'["{}\[\],]')
_IN_STRING = re.compile(rb'["\\]')
_MAX_KEY = 256


class TopLevelMembers:
    """Feed it the body in pieces; :meth:`result` gives the wanted members seen so far."""

    def __init__(self, wanted: dict[str, int]) -> None:
        """``wanted`` maps a member name to the most bytes its value may take (larger: dropped)."""
        self._wanted = {k.encode(): cap for k, cap in wanted.items()}
        self._depth = 0
        self._in_string = False
        self._skip = 0  # bytes of an escape sequence still to skip at the next chunk's start
        self._expect_key = False
        self._key: bytearray | None = None  # the top-level key being read
        self._value: bytearray | None = None  # the wanted value being captured
        self._value_name = b""
        self._value_cap = 0
        self._raw: dict[bytes, bytes] = {}

    def feed(self, data: bytes) -> None:
        i = self._skip
        n = len(data)
        self._skip = max(0, i - n)
        key_from = 0 if self._key is not None else -1
        value_from = 0
        while i < n:
            if self._in_string:
                m = _IN_STRING.search(data, i)
                if m is None:
                    break
                j = m.start()
                if data[j] == 0x5C:  # backslash: the next byte is escaped
                    i = j + 2
                    if i > n:
                        self._skip = i - n
                    continue
                self._in_string = False
                i = j + 1
                if self._key is not None:
                    self._key += data[key_from:j]
                    self._end_key()
                    value_from = i
                    key_from = -1
                continue
            m = _STRUCTURE.search(data, i)
            if m is None:
                break
            j = m.start()
            c = data[j]
            i = j + 1
            if c == 0x22:  # '"'
                self._in_string = True
                if self._depth == 1 and self._expect_key:
                    self._key = bytearray()
                    key_from = i
            elif c in (0x7B, 0x5B):  # '{' '['
                self._depth += 1
                if self._depth == 1:
                    self._expect_key = c == 0x7B
            elif c in (0x7D, 0x5D):  # '}' ']'
                if self._depth == 1:
                    self._end_value(data, value_from, j)
                self._depth -= 1
            elif self._depth == 1:  # ','
                self._end_value(data, value_from, j)
                self._expect_key = True
        if self._key is not None and key_from >= 0:
            self._key += data[key_from:]
            if len(self._key) > _MAX_KEY:
                self._key = bytearray(b"\x00")  # too long to be one we want
        if self._value is not None:
            self._append(data[value_from:])

    def _end_key(self) -> None:
        name = bytes(self._key or b"")
        self._key = None
        self._expect_key = False
        cap = self._wanted.get(name)
        if cap is not None:
            self._value, self._value_name, self._value_cap = bytearray(), name, cap

    def _append(self, piece: bytes) -> None:
        value = self._value
        if value is None:
            return
        if len(value) + len(piece) > self._value_cap:
            self._value = None  # too large to keep; the member stays unknown
            return
        value += piece

    def _end_value(self, data: bytes, start: int, end: int) -> None:
        if self._value is None:
            return
        self._append(data[start:end])
        if self._value is not None:
            self._raw[self._value_name] = bytes(self._value)
        self._value = None

    def result(self) -> dict[str, Any]:
        """The wanted members whose whole value was seen, decoded; the rest are absent."""
        out: dict[str, Any] = {}
        for name, raw in self._raw.items():
            text = raw.strip()
            if not text.startswith(b":"):
                continue
            try:
                out[name.decode()] = json.loads(text[1:])
            except ValueError:
                continue
        return out
