"""The Review step's undo/redo history on small label images (Qt-free)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from liverplan.geometry import image_from_array
from liverplan.viewers.history import History, ValueChange, apply_change, label_change


def _grid() -> sitk.Image:
    image = sitk.Image(6, 5, 4, sitk.sitkInt16)
    image.SetSpacing((0.8, 0.8, 2.5))
    image.SetOrigin((10.0, -20.0, 5.0))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    return image


def _label(array: np.ndarray, grid: sitk.Image) -> sitk.Image:
    return image_from_array(array, grid)


def test_a_change_keeps_only_the_touched_box_and_undo_redo_restore_exactly():
    grid = _grid()
    a = np.zeros((4, 5, 6), np.uint8)
    a[1:3, 1:4, 1:5] = 1
    b = a.copy()
    b[2, 2, 5] = 1
    b[3, 4, 2] = 1
    old, new = _label(a, grid), _label(b, grid)
    change = label_change("liver", old, new)
    assert change.box == (slice(2, 4), slice(2, 5), slice(2, 6))
    assert change.before.shape == (2, 3, 4)
    undone = apply_change(new, change, undo=True, reference=grid)
    assert np.array_equal(sitk.GetArrayViewFromImage(undone), a)
    assert undone.GetDirection() == grid.GetDirection() and undone.GetOrigin() == grid.GetOrigin()
    redone = apply_change(undone, change, undo=False, reference=grid)
    assert np.array_equal(sitk.GetArrayViewFromImage(redone), b)
    assert np.array_equal(sitk.GetArrayViewFromImage(new), b)      # inputs are never changed


def test_no_change_and_a_given_box():
    grid = _grid()
    a = np.zeros((4, 5, 6), np.uint16)
    assert label_change("tumors", _label(a, grid), _label(a.copy(), grid)) is None
    b = a.copy()
    b[0, 0, 0] = 7
    box = (slice(0, 2), slice(0, 2), slice(0, 2))
    change = label_change("tumors", _label(a, grid), _label(b, grid), box)
    assert change.box == box and change.after[0, 0, 0] == 7 and change.after.dtype == np.uint16


def test_a_label_that_appears_goes_again_on_undo():
    grid = _grid()
    b = np.ones((4, 5, 6), np.uint8)
    change = label_change("segments", None, _label(b, grid))
    assert change.box is None and change.before is None
    assert apply_change(_label(b, grid), change, undo=True, reference=grid) is None
    back = apply_change(None, change, undo=False, reference=grid)
    assert np.array_equal(sitk.GetArrayViewFromImage(back), b)


def test_history_order_redo_cleared_by_a_new_edit_and_bounds():
    history = History(max_entries=3)
    assert history.record("nothing", [None]) is None and not history.can_undo
    for n in range(5):
        history.record(f"edit {n}", [ValueChange("landmarks", n, n + 1)])
    assert history.next_undo == "edit 4"
    undone = [history.undo().description for _ in range(3)]
    assert undone == ["edit 4", "edit 3", "edit 2"] and history.undo() is None   # 3 kept
    assert history.redo().description == "edit 2" and history.next_redo == "edit 3"
    history.record("new", [ValueChange("landmarks", 0, 1)])
    assert not history.can_redo and history.next_undo == "new"
    big = np.zeros(1000, np.uint8)
    small = History(max_bytes=1500)
    small.record("a", [ValueChange("x", None, None, nbytes=big.nbytes)])
    small.record("b", [ValueChange("x", None, None, nbytes=big.nbytes)])
    assert small.next_undo == "b" and small.undo() and small.undo() is None
