"""The `dqnfast train` command line: tyro over :class:`dqnfast.config.TrainConfig`, plus ``--preset``
and ``--resume``.

Every config field is an option (``--total-steps N``, ``--async-actor`` / ``--no-async-actor``, ...)
whose help is the field's docstring. Options that are not given come from the preset, or with
``--resume`` from the checkpoint's config; the defaults ``--help`` shows are those of the chosen preset.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from typing import Annotated, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tyro
from tyro.conf import OmitArgPrefixes
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, PrimitiveTypeInfo

from .._validate import atari_env_id
from ..checkpoint import load_training_checkpoint
from ..config import DEFAULT_PRESET, PRESETS, PresetName, TrainConfig, preset

DESCRIPTION = ("Train a DQN agent on an Atari game. Every hyperparameter has an option; unset ones come from "
               "the preset (or from the checkpoint with --resume).")


@dataclasses.dataclass
class TrainCommand:
    preset: PresetName = DEFAULT_PRESET
    """hyperparameter preset (the defaults below are the chosen preset's)"""
    resume: Annotated[Optional[str], tyro.conf.arg(metavar="CHECKPOINT")] = None
    """continue the run saved in CHECKPOINT (its config; options given here override it)"""
    config: Annotated[OmitArgPrefixes[TrainConfig], tyro.conf.arg(
        help="hyperparameters; the defaults shown are the chosen preset's")] = dataclasses.field(default_factory=TrainConfig)


# -- option values that tyro's defaults would spell differently ----------------------------------------
REGISTRY = ConstructorRegistry()
_NONE = ("none", "off")


def _crop_from_str(args: List[str]) -> Optional[Tuple[int, int, int, int]]:
    (text,) = args
    if text.lower() in _NONE:
        return None
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise ValueError(f"crop must be TOP,BOTTOM,LEFT,RIGHT or none, got {text!r}") from None
    if len(values) != 4:
        raise ValueError(f"crop must be four integers TOP,BOTTOM,LEFT,RIGHT, got {text!r}")
    return values  # type: ignore[return-value]


@REGISTRY.primitive_rule
def _crop_rule(info: PrimitiveTypeInfo) -> Optional[PrimitiveConstructorSpec]:
    """``--crop 32,196,8,152`` (one comma-separated value, as users' scripts write it) or ``none``."""
    if info.type != Optional[Tuple[int, int, int, int]]:
        return None
    return PrimitiveConstructorSpec(
        nargs=1, metavar="T,B,L,R|none", instance_from_str=_crop_from_str,
        is_instance=lambda v: v is None or (isinstance(v, tuple) and len(v) == 4),
        str_from_instance=lambda v: ["none" if v is None else ",".join(str(c) for c in v)])


@REGISTRY.primitive_rule
def _optional_float_rule(info: PrimitiveTypeInfo) -> Optional[PrimitiveConstructorSpec]:
    """``--max-grad-norm 10`` or ``none`` / ``off`` (any case)."""
    if info.type != Optional[float]:
        return None
    return PrimitiveConstructorSpec(
        nargs=1, metavar="X|none", instance_from_str=lambda a: None if a[0].lower() in _NONE else float(a[0]),
        is_instance=lambda v: v is None or isinstance(v, (int, float)),
        str_from_instance=lambda v: ["none" if v is None else repr(v)])


# -- parsing -------------------------------------------------------------------------------------------
def _fail(message: str) -> None:
    print(f"usage: dqnfast train [-h] [OPTIONS]\ndqnfast train: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def given_fields(argv: Sequence[str]) -> List[str]:
    """The config fields an option in ``argv`` sets (``--no-x`` sets x)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = []
    for token in argv:
        if not token.startswith("--"):
            continue
        name = token[2:].split("=", 1)[0].replace("-", "_")
        if name not in fields and name.startswith("no_") and name[3:] in fields:
            name = name[3:]
        if name in fields:
            given.append(name)
    return given


def parse_config(argv: Sequence[str]) -> Tuple[TrainConfig, str, Optional[str], Optional[Dict[str, Any]]]:
    """(config, preset name, resume path, loaded checkpoint); exits with a usage error (status 2) on
    bad input, before any environment, network or buffer is created."""
    argv = list(argv)
    # which preset or checkpoint supplies the defaults must be known before the full parse
    first = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    first.add_argument("--preset")
    first.add_argument("--resume")
    known, _ = first.parse_known_args(argv)
    state = None
    try:
        if known.resume is not None:
            if known.preset is not None:
                _fail("--preset cannot be combined with --resume (the run's config is in the checkpoint)")
            state = load_training_checkpoint(known.resume)
            preset_name, base = state["preset"], TrainConfig.from_dict(state["config"])
        else:
            preset_name = known.preset if known.preset in PRESETS else DEFAULT_PRESET  # else tyro names the choices
            base = preset(preset_name)
    except (ValueError, TypeError) as e:
        _fail(str(e))
    command = tyro.cli(TrainCommand, args=argv, prog="dqnfast train", description=DESCRIPTION, registry=REGISTRY,
                       default=TrainCommand(preset=preset_name, resume=known.resume, config=base))
    overrides = {name: getattr(command.config, name) for name in given_fields(argv)}
    try:
        if state is not None:
            cfg = base.replace(**overrides).validate()
        else:
            cfg = preset(command.preset, **overrides)
        atari_env_id(cfg.env_id)
    except (ValueError, TypeError) as e:
        _fail(str(e))
    return cfg, command.preset if state is None else preset_name, known.resume, state


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ..vector_env import EnvWorkerError
    from .trainer import Trainer

    cfg, preset_name, resume, state = parse_config(sys.argv[1:] if argv is None else argv)
    run_dir = os.path.dirname(os.path.abspath(resume)) if resume else None
    try:
        trainer = Trainer(cfg, preset_name, state, run_dir=run_dir)
    except ValueError as e:  # e.g. a corrupt replay snapshot, or a checkpoint from another game
        print(f"dqnfast train: error: {e}", file=sys.stderr)
        return 2
    c = trainer.global_step
    print(f"dqnfast train: {cfg.env_id}, preset {preset_name}, {cfg.total_steps} steps"
          f"{f' (resuming at {c})' if c else ''}, device {trainer.learner.device}, run dir {trainer.run_dir}", flush=True)
    try:
        summary = trainer.run()
    except EnvWorkerError as e:  # already checkpointed by the trainer
        print(f"dqnfast train: error: an env worker failed: {e}", file=sys.stderr)
        return 1
    print(f"done: {summary['global_step']} steps, {summary['updates']} updates, {summary['episodes']} games in "
          f"{summary['wall_time_s']:.0f} s ({summary['sps']:.0f} steps/s); checkpoint {summary['checkpoint']}")
    if trainer.recent_returns:
        print(f"mean return of the last {len(trainer.recent_returns)} training games: {np.mean(trainer.recent_returns):.2f}")
    if "eval_returns" in summary:
        r = summary["eval_returns"]
        print(f"evaluation ({len(r)} games, epsilon {cfg.eval_epsilon}): {np.mean(r):.2f} +- {np.std(r):.2f}")
    if summary.get("learning_curve"):
        print(f"learning curve: {summary['learning_curve']}")
    if summary["interrupted"]:  # the shell's codes for a run ended by SIGTERM / SIGINT (Ctrl-C)
        return 128 + (signal.SIGTERM if summary["terminated"] else signal.SIGINT)
    return 0
