"""The `dqnfast` console script: `dqnfast train | evaluate | bench ...`.

Each subcommand lives in its own module with its own argument parser; this file only dispatches,
importing lazily so `dqnfast bench replay` needs neither torch nor gymnasium.
"""
from __future__ import annotations

import importlib
import sys
from typing import List, Optional

_COMMANDS = {
    "train": ("dqnfast.train", "train a DQN agent (default: the Breakout `demo` preset)"),
    "evaluate": ("dqnfast.evaluate", "evaluate a checkpoint on the real game score"),
    "bench": ("dqnfast.benchmarks", "print benchmark tables: replay | preprocess | pipeline | vector | ray | update | "
                                    "learning | games | torchrl | all"),
}


_OPTIONAL = {"torch", "gymnasium", "ale_py", "tensorboard", "matplotlib", "PIL", "cv2", "stable_baselines3", "tyro",
             "torchrl", "tensordict"}


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: dqnfast {train,evaluate,bench} [options]\n")
        for name, (_, help_text) in _COMMANDS.items():
            print(f"  {name:<9} {help_text}")
        print("\n`dqnfast COMMAND --help` for each command's options.")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in _COMMANDS:
        print(f"dqnfast: unknown command {command!r}; choose from {', '.join(_COMMANDS)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(_COMMANDS[command][0])
        return int(module.main(rest) or 0)
    except ModuleNotFoundError as e:  # an optional dependency of this command is missing
        if e.name not in _OPTIONAL:
            raise
        extra = "torchrl" if e.name in ("torchrl", "tensordict") else "train"
        print(f"dqnfast {command}: needs {e.name}, which is not installed; install the extras with "
              f"pip install 'dqnfast[{extra}]' (install the torch build you want first)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
