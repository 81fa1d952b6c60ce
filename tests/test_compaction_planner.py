"""The compaction planner, pure: candidates in, groups out. A table of cases, then the edges."""

from __future__ import annotations

import pytest

from iceshelf.compaction.rewrite.planner import MIB, REPARTITION, Candidate, PlanOptions, plan, resolve_strategy, target_file_size

TARGET = 100 * MIB


def files(count: int, size: int, partition: object = "p", deletes: int = 0, prefix: str = "f") -> list[Candidate]:
    return [Candidate(f"{prefix}{partition}-{n}", size, 10, partition, deletes) for n in range(count)]


def grouped(candidates: list[Candidate], **options: object) -> list[tuple[object, int, str]]:
    """``(partition, files, reason)`` per group, in plan order."""
    result = plan(candidates, {}, has_sort_order=False, options=PlanOptions(target_file_size=TARGET, **options))
    return [(g.partition, len(g.files), g.reason) for g in result.groups]


CASES = [
    ("five small files are a group", files(5, MIB), {}, [("p", 5, "small files")]),
    ("four small files are not enough", files(4, MIB), {}, []),
    ("min_input_files lowers the bar", files(2, MIB), {"min_input_files": 2}, [("p", 2, "small files")]),
    ("files at 75% of target or more stay", files(6, 80 * MIB), {}, []),
    ("min_file_size overrides the 75% rule", files(6, 80 * MIB), {"min_file_size": 90 * MIB}, [("p", 6, "small files")]),
    ("two files worth a full target file", files(2, 60 * MIB), {}, [("p", 2, "full target file")]),
    ("a lone small file is left alone", files(1, MIB), {}, []),
    ("a lone file with deletes is rewritten", files(1, 90 * MIB, deletes=1), {}, [("p", 1, "deletes")]),
    ("delete_file_threshold", files(1, 90 * MIB, deletes=1), {"delete_file_threshold": 2}, []),
    ("a too-large file is split", files(1, 200 * MIB), {}, [("p", 1, "large file")]),
    ("partitions never mix", files(3, MIB, "a") + files(3, MIB, "b"), {"min_input_files": 3}, [("a", 3, "small files"), ("b", 3, "small files")]),
    ("partitions below the bar are skipped alone", files(5, MIB, "a") + files(2, MIB, "b"), {}, [("a", 5, "small files")]),
    ("groups are capped by max_group_size", files(10, 10 * MIB), {"max_group_size": 50 * MIB}, [("p", 5, "small files"), ("p", 5, "small files")]),
    ("large files do not pull in healthy ones", files(5, MIB) + files(3, 90 * MIB, prefix="h"), {}, [("p", 5, "small files")]),
    (
        "files of another spec are pooled across partitions and always rewritten",
        [Candidate("old-a", 90 * MIB, 10, "a", misplaced=True), Candidate("old-b", MIB, 10, "b", misplaced=True)] + files(2, MIB, "a"),
        {},
        [(REPARTITION, 2, "partition spec")],
    ),
    ("a lone file of another spec moves too", [Candidate("old", 90 * MIB, 10, "a", misplaced=True)], {}, [(REPARTITION, 1, "partition spec")]),
]


@pytest.mark.parametrize(("candidates", "options", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan_cases(candidates: list[Candidate], options: dict, expected: list) -> None:
    assert grouped(candidates, **options) == expected


def test_groups_hold_every_picked_file_once() -> None:
    candidates = files(25, 7 * MIB) + files(4, 95 * MIB, prefix="h")
    result = plan(candidates, {}, False, PlanOptions(target_file_size=TARGET, max_group_size=40 * MIB))
    picked = [f.path for g in result.groups for f in g.files]
    assert sorted(picked) == sorted(f.path for f in candidates if f.size < 75 * MIB)
    assert all(g.size <= 40 * MIB for g in result.groups)
    assert result.files == 25 and result.size == 25 * 7 * MIB


def test_a_remainder_below_the_bar_is_left_for_later() -> None:
    result = plan(files(23, 7 * MIB), {}, False, PlanOptions(target_file_size=TARGET, max_group_size=40 * MIB))
    assert [len(g.files) for g in result.groups] == [5, 5, 5, 5]


def test_target_size_from_table_property_unless_overridden() -> None:
    properties = {"write.target-file-size-bytes": str(64 * MIB)}
    assert target_file_size(properties, PlanOptions()) == 64 * MIB
    assert target_file_size(properties, PlanOptions(target_file_size=128 * MIB)) == 128 * MIB
    assert target_file_size({}, PlanOptions()) == 512 * MIB
    planned = plan(files(5, 40 * MIB), properties, False)
    assert [len(g.files) for g in planned.groups] == [5]
    assert planned.expected_outputs(planned.groups[0]) == 4  # 200 MiB at 64 MiB per file


@pytest.mark.parametrize(
    ("strategy", "has_sort_order", "expected"),
    [("auto", True, "sort"), ("auto", False, "binpack"), ("binpack", True, "binpack"), ("sort", True, "sort"), ("z-order", True, "z-order")],
)
def test_strategy(strategy: str, has_sort_order: bool, expected: str) -> None:
    assert resolve_strategy(strategy, has_sort_order) == expected
    result = plan(files(5, MIB), {}, has_sort_order, PlanOptions(strategy=strategy))
    assert result.strategy == expected
    assert all(g.sort == (expected in ("sort", "z-order")) for g in result.groups)


@pytest.mark.parametrize("strategy", ["sort", "z-order"])
def test_ordering_without_a_sort_order_is_refused(strategy: str) -> None:
    with pytest.raises(ValueError, match="sort order"):
        plan(files(5, MIB), {}, False, PlanOptions(strategy=strategy))


def test_zorder_with_its_own_columns_needs_no_sort_order() -> None:
    result = plan(files(5, MIB), {}, False, PlanOptions(strategy="z-order", zorder_columns=("x", "y")))
    assert result.strategy == "z-order" and result.groups[0].sort


@pytest.mark.parametrize("bad", [{"strategy": "zorder"}, {"min_input_files": 0}, {"target_file_size": 0}, {"max_group_size": -1}])
def test_invalid_options(bad: dict) -> None:
    with pytest.raises(ValueError):
        PlanOptions(**bad)
