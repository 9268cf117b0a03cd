# Reads the version from python/dqnfast/_version.py, the project's one version source, so a plain
# cmake build (tools/dev-build.sh) and a pip build agree. Sets
#   DQNFAST_VERSION_FULL  the string as written there (PEP 440, e.g. 0.2.0rc1)
#   DQNFAST_VERSION       its leading numeric part, which is all CMake's project(VERSION) accepts.
# `cmake -P cmake/DqnfastVersion.cmake` prints DQNFAST_VERSION_FULL on stdout (tests/release/test_version.py).
get_filename_component(_dqnfast_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
file(STRINGS "${_dqnfast_root}/python/dqnfast/_version.py" _dqnfast_version_line
     REGEX "^__version__ = \"[^\"]+\"$")
if(NOT _dqnfast_version_line MATCHES "^__version__ = \"([^\"]+)\"$")
  message(FATAL_ERROR "no line __version__ = \"...\" in ${_dqnfast_root}/python/dqnfast/_version.py")
endif()
set(DQNFAST_VERSION_FULL "${CMAKE_MATCH_1}")
if(NOT DQNFAST_VERSION_FULL MATCHES "^([0-9]+(\\.[0-9]+)*)")
  message(FATAL_ERROR "version '${DQNFAST_VERSION_FULL}' in _version.py does not start with a number")
endif()
set(DQNFAST_VERSION "${CMAKE_MATCH_1}")
if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E echo "${DQNFAST_VERSION_FULL}")
endif()
