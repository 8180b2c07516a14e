"""Search spaces: the YAML files in `spaces/`, loaded and validated before Ray starts.

- `search.space.model`   the validated `Space` and what the search derives from it.
- `search.space.parse`   a space file -> `Space` (the file format is in its docstring).
- `search.space.params`  one `params:` entry: distribution and `when` condition.
- `search.space.grid`    grid points (presets, configs, choice products) and combination checks.
- `search.space.groups`  `groups:`: a search per group, each group's own `Space` (`group_space`).
- `search.space.checks`  the shared value checks and the wording of refusals (`SpaceError`).

Callers import from here: `from search.space import load_space, Space, SpaceError`.
"""

from .model import (
    CONTROL_ID,
    CONTROL_NONE,
    DATA_KEYS,
    SELECTABLE_METRICS,
    FinalSpec,
    GridPoint,
    Param,
    ResourceSpec,
    SchedulerSpec,
    SearcherSpec,
    Space,
    SpaceError,
    config_id,
)
from .parse import load_space, parse_space

__all__ = [
    "SpaceError",
    "Space",
    "Param",
    "GridPoint",
    "SearcherSpec",
    "SchedulerSpec",
    "ResourceSpec",
    "FinalSpec",
    "SELECTABLE_METRICS",
    "DATA_KEYS",
    "CONTROL_ID",
    "CONTROL_NONE",
    "config_id",
    "load_space",
    "parse_space",
]
