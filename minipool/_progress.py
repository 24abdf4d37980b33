"""Progress bars for ``map(progress=True)``."""

from __future__ import annotations

from typing import Any


def progress_bar(total: int | None) -> Any:
    """A tqdm bar on stderr (a widget in notebooks); tqdm is imported only when asked for."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="job", dynamic_ncols=True, smoothing=0.1)
