"""Which files to rewrite, in which groups: pure, so every rule is testable without any I/O.

The rules follow Iceberg's ``RewriteDataFiles`` (and S3 Tables' documented behaviour):

* per partition (spec id + partition values; files of different partitions never mix), a file
  is a candidate when it is smaller than ``min_file_size`` (default 75% of the target), larger
  than ``max_file_size`` (default 180% of the target: it gets split), or has at least
  ``delete_file_threshold`` delete files applying to it (rewriting applies them, after which
  the delete files can go);
* candidates are packed, smallest first, into groups of at most ``max_group_size`` bytes;
* a group is rewritten when it has at least ``min_input_files`` files, or holds at least one
  target file's worth of bytes, or contains a file picked for its size or its deletes -- a lone
  small file on its own is left alone, rewriting it would gain nothing;
* a file written under another partition spec than the output spec (by default the table's
  current one) is always picked, whatever its size: such files of every old partition are pooled
  (as Iceberg does) and rewritten into the output spec's partitions;
* ``sort`` orders rows by the table's sort order, ``z-order`` along a Z-order curve over some
  columns (by default the sort order's, as in S3 Tables), ``binpack`` only concatenates, ``auto``
  sorts when the table has a sort order.

The target size is the table's ``write.target-file-size-bytes`` unless the caller overrides it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Literal

from pyiceberg.table import TableProperties
from pyiceberg.utils.properties import property_as_int

#: S3 Tables' strategy names.
Strategy = Literal["auto", "binpack", "sort", "z-order"]
STRATEGIES: tuple[Strategy, ...] = ("auto", "binpack", "sort", "z-order")
#: The pool (group key) of files written under another partition spec than the output spec.
REPARTITION = "(other partition specs)"

MIB = 1024 * 1024
#: S3 Tables' and Iceberg's default target file size.
DEFAULT_TARGET_FILE_SIZE = 512 * MIB
#: Iceberg's ``max-file-group-size-bytes``: bounds the work (and the commit) of one group.
DEFAULT_MAX_GROUP_SIZE = 100 * 1024 * MIB


@dataclass(frozen=True)
class PlanOptions:
    strategy: Strategy = "auto"
    #: Overrides ``write.target-file-size-bytes``.
    target_file_size: int | None = None
    min_file_size: int | None = None
    max_file_size: int | None = None
    min_input_files: int = 5
    max_group_size: int = DEFAULT_MAX_GROUP_SIZE
    delete_file_threshold: int = 1
    #: Columns of the ``z-order`` strategy; empty: the table sort order's.
    zorder_columns: tuple[str, ...] = ()
    #: Iceberg's ``output-spec-id``: the spec the rewritten files are written under; ``None``: the current one.
    output_spec_id: int | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"Unknown strategy {self.strategy!r}; one of {', '.join(STRATEGIES)}")
        for name in ("target_file_size", "min_file_size", "max_file_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive")
        if self.min_input_files < 1 or self.max_group_size <= 0 or self.delete_file_threshold < 1:
            raise ValueError("min_input_files, max_group_size and delete_file_threshold must be positive")


@dataclass(frozen=True)
class Candidate:
    """What the planner knows of one live data file."""

    path: str
    size: int
    records: int
    partition: Hashable
    delete_files: int = 0
    #: Written under another partition spec than the output spec.
    misplaced: bool = False


@dataclass(frozen=True)
class Group:
    partition: Hashable
    files: tuple[Candidate, ...]
    #: Rows are ordered (``sort`` or ``z-order``), not only concatenated.
    sort: bool
    #: Why it is rewritten: "partition spec", "small files", "deletes", "large file", or "full target file".
    reason: str

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)


@dataclass(frozen=True)
class Plan:
    strategy: Strategy
    target_file_size: int
    groups: tuple[Group, ...]

    @property
    def files(self) -> int:
        return sum(len(g.files) for g in self.groups)

    @property
    def size(self) -> int:
        return sum(g.size for g in self.groups)

    def expected_outputs(self, group: Group) -> int:
        return max(1, math.ceil(group.size / self.target_file_size))


def target_file_size(properties: dict[str, str], options: PlanOptions) -> int:
    if options.target_file_size is not None:
        return options.target_file_size
    configured = property_as_int(properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES, DEFAULT_TARGET_FILE_SIZE)
    return configured if configured and configured > 0 else DEFAULT_TARGET_FILE_SIZE


def resolve_strategy(strategy: Strategy, has_sort_order: bool, zorder_columns: tuple[str, ...] = ()) -> Strategy:
    if strategy == "auto":
        return "sort" if has_sort_order else "binpack"
    if strategy == "sort" and not has_sort_order:
        raise ValueError("The sort strategy needs a table sort order; this table has none")
    if strategy == "z-order" and not (has_sort_order or zorder_columns):
        raise ValueError("The z-order strategy needs columns: give them, or define a table sort order")
    return strategy


def plan(
    candidates: list[Candidate], properties: dict[str, str], has_sort_order: bool, options: PlanOptions = PlanOptions()
) -> Plan:
    strategy = resolve_strategy(options.strategy, has_sort_order, options.zorder_columns)
    target = target_file_size(properties, options)
    min_size = options.min_file_size if options.min_file_size is not None else int(target * 0.75)
    max_size = options.max_file_size if options.max_file_size is not None else int(target * 1.8)

    by_partition: dict[Hashable, list[Candidate]] = {}
    for candidate in candidates:
        by_partition.setdefault(REPARTITION if candidate.misplaced else candidate.partition, []).append(candidate)

    groups: list[Group] = []
    for partition, files in by_partition.items():
        picked = [
            f
            for f in files
            if f.misplaced or f.size < min_size or f.size > max_size or f.delete_files >= options.delete_file_threshold
        ]
        for packed in _pack(sorted(picked, key=lambda f: (f.size, f.path)), options.max_group_size):
            reason = _reason(packed, target, max_size, options)
            if reason is not None:
                groups.append(Group(partition, tuple(packed), strategy in ("sort", "z-order"), reason))
    return Plan(strategy, target, tuple(groups))


def _pack(files: list[Candidate], max_group_size: int) -> list[list[Candidate]]:
    packs: list[list[Candidate]] = []
    current: list[Candidate] = []
    size = 0
    for f in files:
        if current and size + f.size > max_group_size:
            packs.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size
    if current:
        packs.append(current)
    return packs


def _reason(files: list[Candidate], target: int, max_size: int, options: PlanOptions) -> str | None:
    if any(f.misplaced for f in files):
        return "partition spec"
    if any(f.delete_files >= options.delete_file_threshold for f in files):
        return "deletes"
    if any(f.size > max_size for f in files):
        return "large file"
    if len(files) >= options.min_input_files:
        return "small files"
    if len(files) > 1 and sum(f.size for f in files) >= target:
        return "full target file"
    return None
