"""One undo/redo history for every hand correction of a case (liver, lesions, vessels,
landmarks and segments), Qt-free.

An entry keeps what one edit changed: for each label image, the box of voxels it touched before
and after (never whole volumes, except when a label image appears or goes), and for small
values (the segment landmarks) the value before and after. Undo writes the boxes back into the
label image current at that time, so the history must be cleared when something else replaces
a label image (a new automatic segmentation, another case).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from liverplan.geometry import image_from_array
from liverplan.volumetry.liver import bbox


@dataclass(frozen=True)
class LabelChange:
    """The voxels of one label image an edit changed. box None: the whole image, which did
    not exist before (before None) or after (after None)."""
    name: str
    box: tuple[slice, ...] | None
    before: np.ndarray | None
    after: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.before, self.after) if a is not None)


@dataclass(frozen=True)
class ValueChange:
    """A small value an edit changed (e.g. the landmarks), kept as it was and as it became."""
    key: str
    before: Any
    after: Any
    nbytes: int = 0


@dataclass(frozen=True)
class Entry:
    description: str
    changes: tuple

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.changes)


def label_change(name: str, old: sitk.Image | None, new: sitk.Image | None,
                 box: tuple[slice, ...] | None = None) -> LabelChange | None:
    """What changed from `old` to `new` (None if nothing). `box`: where the edit worked, when
    the caller knows it (saves comparing the whole volumes)."""
    if old is None and new is None:
        return None
    if old is None or new is None:
        return LabelChange(name, None, None if old is None else sitk.GetArrayFromImage(old),
                           None if new is None else sitk.GetArrayFromImage(new))
    a, b = sitk.GetArrayViewFromImage(old), sitk.GetArrayViewFromImage(new)
    if box is None:
        changed = a != b
        if not changed.any():
            return None
        box = bbox(changed)
    elif np.array_equal(a[box], b[box]):
        return None
    return LabelChange(name, box, a[box].copy(), b[box].copy())


def apply_change(current: sitk.Image | None, change: LabelChange, *, undo: bool,
                 reference: sitk.Image) -> sitk.Image | None:
    """The label image with `change` undone (or redone): a new image, `current` is untouched.
    `reference` gives the grid when the whole image comes back."""
    target = change.before if undo else change.after
    if change.box is None:
        return None if target is None else image_from_array(target.copy(), reference)
    array = sitk.GetArrayFromImage(current)
    array[change.box] = target
    return image_from_array(array, current)


class History:
    """Undo and redo stacks of entries, bounded in count and in memory (oldest dropped)."""

    def __init__(self, max_entries: int = 50, max_bytes: int = 1 << 30):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._undo: list[Entry] = []
        self._redo: list[Entry] = []

    def record(self, description: str, changes) -> Entry | None:
        """Add an edit (changes that are None are left out); a new edit clears the redo stack."""
        changes = tuple(c for c in changes if c is not None)
        if not changes:
            return None
        entry = Entry(description, changes)
        self._undo.append(entry)
        self._redo.clear()
        while len(self._undo) > self.max_entries or (
                len(self._undo) > 1 and sum(e.nbytes for e in self._undo) > self.max_bytes):
            self._undo.pop(0)
        return entry

    def undo(self) -> Entry | None:
        """The entry to undo (the caller applies its changes backwards), or None."""
        if not self._undo:
            return None
        entry = self._undo.pop()
        self._redo.append(entry)
        return entry

    def redo(self) -> Entry | None:
        if not self._redo:
            return None
        entry = self._redo.pop()
        self._undo.append(entry)
        return entry

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def next_undo(self) -> str | None:
        return self._undo[-1].description if self._undo else None

    @property
    def next_redo(self) -> str | None:
        return self._redo[-1].description if self._redo else None
