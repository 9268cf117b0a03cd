"""Every repository path that a comment, docstring or document cites exists.

A moved or deleted file leaves its citations behind (``config.py`` once cited a ``docs/training.md``
that no longer existed). This scans every tracked text file for words that start with one of the
repository's top-level folders (``cpp/``, ``python/``, ``tests/``, ...) and checks each against the
checkout. Citations inside another project (``google/dopamine`` ``labs/...``, SB3's ``tests/...``)
name their project right before the path and are skipped by the rule in ``_foreign``. A path that
exists from the citing file's own folder (``tests/README.md`` citing ``replay/...``) counts too.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEXT_SUFFIXES = {".py", ".pyi", ".md", ".hpp", ".cpp", ".h", ".txt", ".toml", ".cfg", ".yml", ".yaml", ".sh", ".cmake", ""}
# A path-looking word: a top-level folder of this repository, then at least one more segment.
CITATION = re.compile(r"(?<![\w./-])((?:\.\./)?(?:\.ci|bench|cmake|cpp|docs|examples|python|tests|tools)/[\w./*{}-]*[\w*}])")
# Words before a citation that say it is another project's path (SB3's tests/, Dopamine's labs/...).
FOREIGN = re.compile(r"(SB3|stable-baselines3|gymnasium|Gymnasium|dopamine|torchrl|pytorch/rl|TorchRL|"
                     r"bigger_better_faster|iris|rllte|EnvPool|envpool|CleanRL|cleanrl|Dopamine|Ray|ray|"
                     r"pybind11|ale-py|ALE)['’]?s?\b[^\n]{0,40}$")


def tracked_text_files() -> List[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = [ROOT / p for p in out.decode().split("\0") if p]
    return [p for p in files if p.is_file() and p.suffix in TEXT_SUFFIXES and p.stat().st_size < 2_000_000]


def _foreign(line: str, start: int) -> bool:
    return bool(FOREIGN.search(line[:start]))


def _exists(citation: str, folder: Path = ROOT) -> bool:
    """Whether the cited path exists from the repository's root or from the citing file's folder."""
    if folder != ROOT and _exists(citation):
        return True
    path = citation[3:] if citation.startswith("../") else citation
    base = folder.parent if citation.startswith("../") else folder
    if citation.startswith("../shared/"):
        return True  # the shared folder beside the checkout is not part of the repository
    path = path.rstrip(".")
    if "{" in path:  # a template such as build/{wheel_tag}
        return True
    if "*" in path:  # a pattern (often of build outputs, absent from a clean checkout): its folder must exist
        return (base / path).parent.is_dir() if "*" not in str(Path(path).parent) else any(base.glob(path))
    return (base / path).exists()


def cited_paths() -> Dict[str, Set[str]]:
    """Each missing citation, with the files (and lines) that cite it."""
    missing: Dict[str, Set[str]] = {}
    for f in tracked_text_files():
        if f == Path(__file__).resolve():  # its own examples of missing paths
            continue
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for m in CITATION.finditer(line):
                citation = m.group(1)
                if _foreign(line, m.start()) or _exists(citation, f.parent):
                    continue
                missing.setdefault(citation, set()).add(f"{f.relative_to(ROOT)}:{lineno}")
    return missing


def test_every_cited_repository_path_exists():
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (git ls-files)")
    missing = cited_paths()
    assert not missing, "cited paths that do not exist:\n" + "\n".join(
        f"  {c}  (cited at {', '.join(sorted(w)[:4])})" for c, w in sorted(missing.items()))


def test_a_citation_of_a_missing_file_is_found(tmp_path):
    """The scanner itself: a made-up citation is reported, a real one is not."""
    assert not _exists("docs/no_such_page.md")
    assert _exists("tests/docs/test_cited_paths.py")
    assert CITATION.findall("see tests/docs/test_cited_paths.py and cpp/dqnfast/nope.hpp.") == [
        "tests/docs/test_cited_paths.py", "cpp/dqnfast/nope.hpp"]
    assert _foreign("SB3's own tests (", len("SB3's own tests ("))
