"""The one seed parser of ``generate`` (command line, Python API, server): one value limit, and the
count bounded before anything is listed, whatever form the seeds come in."""

from __future__ import annotations

import itertools
import numbers
import re
from collections.abc import Iterable
from typing import Any

from ..errors import ResganError

MAX_SEEDS = 100_000  # images one generate call may ask for (one z each, all held in memory)
MAX_SEED = 2**63 - 1  # a torch generator's seed
_PART = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", re.ASCII)  # ASCII digits only: int() also takes "٣"


def _too_many(what: str, n: int, max_seeds: int) -> ResganError:
    return ResganError(f"seeds {what} asks for {n:,} images, over the limit of {max_seeds:,} a call; "
                       "split it into several calls")


def _check(seed: int) -> int:
    if not 0 <= seed <= MAX_SEED:
        raise ResganError(f"seeds must be within 0..{MAX_SEED} (a torch generator's seed), got {seed}")
    return seed


def _from_text(text: str, max_seeds: int) -> list[int]:
    parts = [_PART.fullmatch(p) for p in text.split(",")]
    if not text.strip() or not all(parts):
        raise ResganError(f"seeds wants a list like 0-63 or 1,5,9, got {text!r}")
    if any(len(g) > 20 for m in parts for g in m.groups() if g):  # int() of a huge digit string is slow or refused
        raise ResganError(f"seeds must be within 0..{MAX_SEED} (a torch generator's seed), got {text[:40]!r}...")
    spans = [(int(m[1]), int(m[2] if m[2] is not None else m[1])) for m in parts]
    if any(b < a for a, b in spans):
        raise ResganError(f"seeds wants a list like 0-63 or 1,5,9 (a range runs upwards), got {text!r}")
    total = sum(b - a + 1 for a, b in spans)  # counted before any is listed
    if total > max_seeds:
        raise _too_many(repr(text), total, max_seeds)
    for a, b in spans:
        _check(a), _check(b)
    return [s for a, b in spans for s in range(a, b + 1)]


def _from_iterable(seeds: Iterable[Any], max_seeds: int) -> list[int]:
    if isinstance(seeds, range):  # counted by arithmetic: len() overflows past sys.maxsize
        n = max(0, (seeds.stop - seeds.start + seeds.step - (1 if seeds.step > 0 else -1)) // seeds.step)
        if n > max_seeds:
            raise _too_many(repr(seeds), n, max_seeds)
    try:
        items = list(itertools.islice(iter(seeds), max_seeds + 1))  # read once (a generator works)
    except TypeError:
        raise ResganError(f"seeds: give whole numbers (a range, a list), a string like '0-15', or one int; "
                          f"not {type(seeds).__name__}") from None
    if len(items) > max_seeds:
        raise ResganError(f"seeds: more than {max_seeds:,} given, over the limit of {max_seeds:,} a call; "
                          "split it into several calls")
    out = []
    for s in items:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise ResganError(f"seeds: give whole numbers (a range, a list), a string like '0-15', or one int; "
                              f"got {s!r}")
        out.append(_check(int(s)))
    return out


def parse_seeds(seeds: Any, max_seeds: int = MAX_SEEDS) -> list[int]:
    """``"0-63"``, ``"1,5,9"``, ``"0-9,20"``, one int, or any iterable of ints (read once) -> a list of
    1..``max_seeds`` seeds, each within 0..MAX_SEED."""
    if isinstance(seeds, str):
        out = _from_text(seeds, max_seeds)
    elif isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        out = [_check(int(seeds))]
    elif isinstance(seeds, (bytes, bytearray, dict)) or seeds is None or isinstance(seeds, (bool, float)):
        raise ResganError(f"seeds: give whole numbers (a range, a list), a string like '0-15', or one int; "
                          f"not {type(seeds).__name__}")
    else:
        out = _from_iterable(seeds, max_seeds)
    if not out:
        raise ResganError(f"seeds: give 1 to {max_seeds:,} seeds, got none")
    return out
