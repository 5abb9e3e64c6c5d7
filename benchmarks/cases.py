"""Cases the benchmarks share: the full-size synthetic patient (cached) and the real CT folder."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def full_phantom(seed: int = 0) -> Path:
    """The full-size (512x512x~130) synthetic patient of `seed` (its anatomy and lesion
    placement), generated once into the test cache and regenerated when the generator changes."""
    from liverplan.io import phantom
    key = hashlib.sha1(Path(phantom.__file__).read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("LIVERPLAN_TEST_CACHE", Path.home() / ".cache" / "liverplan-tests"))
    root = cache / f"benchmark-phantom-full-s{seed}-{key}"
    if not root.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".building-"))
        phantom.generate(tmp, seed=seed, size="full", followup=False)
        tmp.rename(root)
    return root
