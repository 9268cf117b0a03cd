"""The package version, written only here: pyproject.toml (scikit-build-core's regex provider),
CMakeLists.txt (cmake/DqnfastVersion.cmake) and ``dqnfast.__version__`` all read this line."""
__version__ = "0.1.0"
