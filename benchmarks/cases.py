"""Cases the benchmarks share: the full-size synthetic patient (cached) and the real CT folder."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def full_phantom(seed: int = 0) -> Path:
    """The full-size (512x512x~130) synthetic patient of `seed` (its anatomy and lesion
    placement), generated once into the test cache and regenerated when the generator changes."""
    from liverplan.io import phantom
    return phantom.cached(seed=seed, size="full", followup=False).root
