"""The fast tier's share of a parametrized test: one case runs in ``-m "not slow"``, the rest in the
slow tier (CI runs both). For tests whose every case starts processes or plays real games."""
from __future__ import annotations

from typing import Any, List

import pytest


def one_fast_case(*values: Any) -> List[Any]:
    """``values`` for ``pytest.mark.parametrize``, every one but the first marked ``slow``. A tuple
    is one case of a several-name parametrize (``"frame_skip,life_loss"``)."""
    def slow(v: Any) -> Any:
        return pytest.param(*v, marks=pytest.mark.slow) if isinstance(v, tuple) else pytest.param(v, marks=pytest.mark.slow)
    return [values[0], *(slow(v) for v in values[1:])]
