# Type stubs for the native module. Only the preprocess part (issue 3) is spelled out here; the
# module-level __getattr__ keeps the rest (FrameStore, ...) typed as Any until it has stubs.
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

def __getattr__(name: str) -> Any: ...

# ---- preprocess (issue 3) ----
def preprocess(
    frame: npt.NDArray[np.uint8],
    *,
    prev: Optional[npt.NDArray[np.uint8]] = None,
    crop: Optional[Sequence[int]] = None,
    size: Union[int, Tuple[int, int]] = (84, 84),
    gray: str = "luma",
    interp: str = "nearest",
    out: Optional[npt.NDArray[np.uint8]] = None,
) -> npt.NDArray[np.uint8]: ...
def _simd_level() -> str: ...
def _simd_supported() -> List[str]: ...
def _set_simd(level: str) -> str: ...
def _set_threads(max_threads: int = 2, min_work: int = 4194304) -> None: ...
def _threads() -> Tuple[int, int]: ...
