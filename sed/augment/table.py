"""The README's augmentation table, written from the registry (each entry's summary and source).

`markdown_table()` is the table README.md shows under "Augmentations";
`tests/test_augmentations.py` checks that the README holds exactly it, so a new
registry entry (or a changed summary) shows up as a failing test until the README
is updated (`python -m sed.augment.table` prints the table to paste).
"""

from __future__ import annotations

from sed.augment import REGISTRY

HEADER = "| `augmentation` | where | fields | perturbation | source |\n|---|---|---|---|---|"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table() -> str:
    """One row per registered augmentation, in registry order (the paper's first)."""
    rows = [HEADER]
    for entry in REGISTRY.values():
        where = ", ".join(entry.locations) if entry.perturbs else "-"
        fields = ", ".join(f"`{name}`" for name in entry.field_names) or "-"
        rows.append(f"| `{entry.name}` | {where} | {fields} | {_cell(entry.summary)} | {_cell(entry.source)} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
