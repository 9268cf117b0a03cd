"""Every Python block of the README and of the docs runs, so no example can rot.

The blocks of one page run in order in one namespace (a page's later examples may use what its
earlier ones made), in a temporary working directory. A block preceded by the comment
``<!-- docs-test: skip REASON -->`` is skipped with that reason; the reason names where the same
code runs instead.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

pytestmark = pytest.mark.slow  # the docs' examples train SB3's DQN and step Atari games


ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s+(.*?)\s*-->")


def python_blocks(text: str) -> List[Tuple[int, str, Optional[str]]]:
    """(line, code, skip reason or None) of each ```python block."""
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            before = lines[start - 1] if start else ""
            m = SKIP.search(before)
            blocks.append((start + 1, textwrap.dedent("\n".join(lines[start + 1:j])), m.group(1) if m else None))
            i = j
        i += 1
    return blocks


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p.read_text())],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_python_blocks_of_a_page_run(page, tmp_path, monkeypatch, one_torch_thread):
    pytest.importorskip("gymnasium")
    pytest.importorskip("ale_py")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    blocks = python_blocks(page.read_text())
    if all(skip for _, _, skip in blocks):
        pytest.skip("; ".join(skip for _, _, skip in blocks))
    ran = 0
    for line, code, skip in blocks:
        if skip:
            continue
        try:
            exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)
        except ModuleNotFoundError as e:
            pytest.skip(f"{page.name}:{line} needs {e.name}")
        ran += 1
    assert ran, "every block of the page is skipped"


def test_the_block_reader_finds_blocks_and_skips():
    text = "x\n```python\na = 1\n```\n<!-- docs-test: skip needs a GPU -->\n```python\nb = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(2, "a = 1", None), (6, "b = 2", "needs a GPU")]
