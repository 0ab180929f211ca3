"""Scopes of the group metrics: each sensitive attribute, and each intersection of 2..k of them.

An intersection is named by joining its attributes with ``+`` in probe order (``gender+race``); its
groups join the member groups with `` & `` (``female & black``). Rows with no value for one of the
scope's attributes are left out of that scope only.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Scope", "build_scopes", "SEPARATOR", "GROUP_JOIN"]

SEPARATOR = "+"
GROUP_JOIN = " & "


@dataclass(frozen=True)
class Scope:
    """One way of splitting the audited rows into groups."""

    name: str
    kind: str  # "attribute" | "intersection" | "overall"
    attributes: tuple[str, ...]
    known: np.ndarray  # bool per prediction row: the row belongs to one of the groups
    codes: np.ndarray  # group index of each known row
    groups: list[str]
    members: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def n_groups(self) -> int:
        return len(self.groups)


def _overall(n: int) -> Scope:
    return Scope("overall", "overall", (), np.ones(n, bool), np.zeros(n, np.int64), ["all"])


def _scope(table: pd.DataFrame, attrs: tuple[str, ...]) -> Scope | None:
    import pandas as pd  # imported when run: keeps `auditor checks` fast

    cols = table[list(attrs)]
    known = cols.notna().all(axis=1).to_numpy()
    if not known.any():
        return None
    combined = np.zeros(int(known.sum()), dtype=np.int64)
    levels: list[np.ndarray] = []
    for a in attrs:  # sorted codes per attribute, combined into one mixed-radix code per row
        codes, uniq = pd.factorize(cols.loc[known, a].astype(str), sort=True)
        combined = combined * len(uniq) + codes
        levels.append(np.asarray(uniq, dtype=object))
    present, codes = np.unique(combined, return_inverse=True)
    keys = []
    for c in present:
        parts = []
        for lv in reversed(levels):
            c, r = divmod(int(c), len(lv))
            parts.append(str(lv[r]))
        keys.append(tuple(reversed(parts)))
    if len(attrs) == 1:
        return Scope(attrs[0], "attribute", attrs, known, codes.astype(np.int64), [k[0] for k in keys])
    names = [GROUP_JOIN.join(k) for k in keys]
    if len(set(names)) < len(names):  # a group name that contains the joiner: spell the attributes out
        names = [GROUP_JOIN.join(f"{a}={v}" for a, v in zip(attrs, k)) for k in keys]
    members = {name: dict(zip(attrs, k)) for name, k in zip(names, keys)}
    return Scope(SEPARATOR.join(attrs), "intersection", attrs, known, codes.astype(np.int64), names, members)


def build_scopes(table: pd.DataFrame, attributes: list[str], max_order: int) -> tuple[Scope, list[Scope], list[str]]:
    """The overall scope, the attribute and intersection scopes, and the attributes with no values.

    ``table`` has one row per prediction, in prediction order.
    """
    overall = _overall(len(table))
    scopes: list[Scope] = []
    empty: list[str] = []
    usable: list[str] = []
    for attr in attributes:
        s = _scope(table, (attr,))
        if s is None:
            empty.append(attr)
        else:
            scopes.append(s)
            usable.append(attr)
    for order in range(2, min(max_order, len(usable)) + 1):
        for combo in itertools.combinations(usable, order):
            s = _scope(table, combo)
            if s is not None:
                scopes.append(s)
    return overall, scopes, empty
