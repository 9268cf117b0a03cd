"""One version source: python/dqnfast/_version.py. pyproject.toml (scikit-build-core's regex
provider), CMake (cmake/DqnfastVersion.cmake) and `dqnfast.__version__` must all read that line."""
import importlib.metadata
import shutil
import subprocess
from pathlib import Path

import pytest

import dqnfast
from support.version_source import VERSION_FILE, written_version

ROOT = Path(__file__).resolve().parents[2]


def test_written_version_is_pep440():
    packaging_version = pytest.importorskip("packaging.version")
    assert str(packaging_version.Version(written_version())) == written_version()


def test_python_package_reports_the_written_version():
    assert dqnfast.__version__ == written_version()


def test_installed_metadata_matches_when_dqnfast_is_installed():
    """When the imported dqnfast is an installed distribution (CI's `pip install .`), its metadata
    version is the written one too; an in-place build (PYTHONPATH=python) has no metadata to check."""
    try:
        dist = importlib.metadata.distribution("dqnfast")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("dqnfast is not installed (in-place build)")
    if Path(dist.locate_file("dqnfast/__init__.py")).resolve() != Path(dqnfast.__file__).resolve():
        pytest.skip("the imported dqnfast is not the installed distribution")
    assert dist.version == written_version()


def test_pyproject_takes_the_version_from_the_file():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in config["project"]
    assert "version" in config["project"]["dynamic"]
    source = config["tool"]["scikit-build"]["metadata"]["version"]
    assert source["provider"] == "scikit_build_core.metadata.regex"
    assert (ROOT / source["input"]).resolve() == VERSION_FILE


def test_scikit_build_core_reads_the_written_version(monkeypatch):
    regex = pytest.importorskip("scikit_build_core.metadata.regex")
    monkeypatch.chdir(ROOT)  # the provider reads its input relative to the project root
    assert regex.dynamic_metadata("version", {"input": "python/dqnfast/_version.py"}) == written_version()


def test_cmake_reads_the_written_version():
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("needs cmake")
    run = subprocess.run([cmake, "-P", str(ROOT / "cmake" / "DqnfastVersion.cmake")], capture_output=True,
                         text=True, check=True)
    assert run.stdout.strip() == written_version()
