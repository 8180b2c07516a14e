"""Consistency augmentations: one registry entry each (`registry`), the paper's and the realistic ones.

`from sed.augment import REGISTRY, get` -- importing the package
registers every augmentation (`paper`, then `realistic`), in that order.
"""

from sed.augment import paper, realistic  # noqa: F401  (registration)
from sed.augment.registry import (
    REGISTRY,
    Augmentation,
    FieldRule,
    Perturbation,
    Probe,
    field_rules,
    get,
    readers,
    register,
)

#: The augmentation names, in registration order (the paper's first).
NAMES: tuple[str, ...] = tuple(REGISTRY)

__all__ = [
    "NAMES",
    "REGISTRY",
    "Augmentation",
    "FieldRule",
    "Perturbation",
    "Probe",
    "field_rules",
    "get",
    "readers",
    "register",
]
