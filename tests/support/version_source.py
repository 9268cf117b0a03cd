"""The version as written in the project's one version source, python/dqnfast/_version.py."""
import re
from pathlib import Path

VERSION_FILE = Path(__file__).resolve().parents[2] / "python" / "dqnfast" / "_version.py"


def written_version() -> str:
    match = re.search(r'^__version__ = "([^"]+)"$', VERSION_FILE.read_text(), re.MULTILINE)
    assert match, f"no __version__ line in {VERSION_FILE}"
    return match.group(1)
