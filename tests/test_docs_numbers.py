"""Every number README.md and docs/ show a user is either written from the stored results or checked against them.

- Tables and result lines are generated blocks (``<!-- name:start -->`` ... ``<!-- name:end -->``), written by
  ``python -m benchmarks docs`` (``benchmarks/suite/docs_blocks.py``); a page whose block differs from what the
  files in ``benchmarks/results/`` give now fails here.
- Every other number in a page's prose (code blocks and inline code aside) must sit inside a phrase of
  ``tests/docs_numbers.yaml``: a *result* phrase, whose ``{file:path|format}`` fields are rendered from the stored
  result and must then be found verbatim in the page, or a *setting* phrase (a default, a budget, a citation, a
  fact about a library) found verbatim. A number typed by hand, or left behind when a result was rerun, fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from benchmarks.suite import docs_blocks

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGES = ["README.md"] + sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))
SOURCES = yaml.safe_load((Path(__file__).parent / "docs_numbers.yaml").read_text())
BLOCK = re.compile(r"<!-- ([\w-]+):start -->(.*?)<!-- \1:end -->", re.DOTALL)
# A number as prose shows it: 87, 0.50, -27.3, 2,000, 3x; not a digit inside a name (DoorKey-8x8, Qwen2.5-1.5B,
# SHA-256, v5, 300k).
NUMBER = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?")
FIELD = re.compile(r"\{([^{}:|]+):([^{}|]+)\|([^{}]+)\}")
WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def prose(page: str) -> str:
    """The page without its code blocks, generated blocks and comments, whitespace collapsed to single spaces."""
    text, kept, fence = (ROOT / page).read_text(), [], False
    for line in BLOCK.sub(" ", text).splitlines():
        if line.strip().startswith("```"):
            fence = not fence
        elif not fence:
            kept.append(line)
    return " ".join(re.sub(r"<!--.*?-->", " ", "\n".join(kept), flags=re.DOTALL).split())


def numbers(text: str) -> list[tuple[int, int]]:
    """Spans of the numbers in ``text`` outside inline code and link targets."""
    hidden = [m.span() for m in re.finditer(r"`[^`]*`|\]\([^)]*\)", text)]
    spans = []
    for m in NUMBER.finditer(text):
        start, end = m.span()
        before, after = text[max(start - 2, 0):start], text[end:end + 2]
        if re.search(r"[\w.]$", before) or re.match(r"[A-Za-z]-$", before):  # Coder-1.5B, SHA-256, v5
            continue
        if re.match(r"[A-Za-z_]", after) and not re.match(r"x(?![\w])", after):  # 300k, 1.5B; 3x counts
            continue
        if not any(a <= start < b for a, b in hidden):
            spans.append((start, end))
    return spans


def value_at(file: str, path: str):
    value = json.loads((RESULTS / file).read_text())
    for key in path.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


def render(phrase: str) -> str:
    """A result phrase with each ``{file:path|format}`` field replaced by the stored value, formatted."""
    def field(m: re.Match) -> str:
        value, fmt = value_at(m[1], m[2]), m[3]
        if fmt == "pct":
            return docs_blocks.pct(value)
        if fmt == "points":
            return docs_blocks.points(value)
        if fmt == "word":
            return WORDS[value]
        return format(value, fmt)
    return FIELD.sub(field, phrase)


def test_every_generated_block_is_what_the_stored_results_give() -> None:
    for page in PAGES:
        found = {m[1]: m[2] for m in BLOCK.finditer((ROOT / page).read_text())}
        registered = docs_blocks.BLOCKS.get(page, {})
        assert set(found) == set(registered), (page, "blocks without a writer, or writers without a block")
        for name, write in registered.items():
            assert found[name] == f"\n{write()}", f"{page}: block {name} is not current: python -m benchmarks docs"


def check(page: str) -> tuple[list[str], list[str]]:
    """The page's listed phrases that are not in it (as the stored results render them), and its numbers that no
    listed phrase covers, each with some context."""
    text, entry = prose(page), SOURCES.get(page) or {}
    missing, covered = [], []
    for kind in ("results", "settings"):
        for phrase in entry.get(kind) or []:
            assert isinstance(phrase, str), f"{page}: quote the phrase {phrase!r} in tests/docs_numbers.yaml"
            shown = " ".join((render(phrase) if kind == "results" else phrase).split())
            starts = [m.start() for m in re.finditer(re.escape(shown), text)]
            missing += [] if starts else [f"{kind[:-1]}: {shown!r}"]
            covered += [(s, s + len(shown)) for s in starts]
    loose = [text[max(a - 40, 0):b + 20] for a, b in numbers(text) if not any(s <= a and b <= e for s, e in covered)]
    return missing, loose


@pytest.mark.parametrize("page", PAGES)
def test_every_number_in_the_prose_is_a_checked_result_or_a_setting(page: str) -> None:
    missing, loose = check(page)
    assert not missing, f"{page}: phrases of tests/docs_numbers.yaml not in the page as rendered: {missing}"
    assert not loose, f"{page}: numbers neither generated nor listed in tests/docs_numbers.yaml: {loose}"


def test_the_number_finder_sees_results_and_skips_names_and_code() -> None:
    text = "agrees on 87 % [81–92] of DoorKey-8x8 pairs (Qwen2.5-Coder-1.5B, -27.3 points) at 0.55 prompts/s, 3x, `n=5`"
    assert [text[a:b] for a, b in numbers(text)] == ["87", "81", "92", "-27.3", "0.55", "3"]
    assert render("{judge_quality.json:n_pairs.minigrid|d} pairs") == \
        f"{json.loads((RESULTS / 'judge_quality.json').read_text())['n_pairs']['minigrid']} pairs"
