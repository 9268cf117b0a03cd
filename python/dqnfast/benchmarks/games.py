"""`dqnfast bench games BATCH [BATCH ...]`: one setting judged across games, as Atari 100k results
are judged: each game's score human-normalised, then the median, IQM and mean over the games, beside
the published agents' on the same games.

    dqnfast bench games runs/atari100k-games/* runs/bench-learning/Breakout__atari100k [--json PATH]
    dqnfast bench games A/* --against B/*      # two settings, paired game by game (:mod:`.versus`)

Each BATCH is the OUT folder of one `dqnfast bench learning` run (its summary.json), one game each.
All must share one setting (the preset and every option but --env-id): the point is the same agent,
unchanged, on every game, so batches of different settings are refused, naming what differs.

A game's score is the mean over its seeds of each seed's mean over its evaluation games; its
human-normalised score (HNS) is ``(score - random) / (human - random)`` with the reference scores
of :mod:`.anchors`. The published agents' figures are their per-game means over 100 runs, so the
statistics over games here are of per-game means for them and for this batch alike (rliable's
IQM over runs x games, which needs every run of every game, can differ from an IQM of the means).
A game with one seed says nothing of its spread across seeds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Sequence

import numpy as np

from . import aggregate, anchors, versus

AGENTS = ("DER", "DrQ", "DrQ(ε)", "SPR")
STATISTICS = ("median", "iqm", "mean")


class GamesError(ValueError):
    pass


def batch_setting(folder: str, summary: Dict[str, Any]) -> Dict[str, Any]:
    """(config without env_id, where it was read) of one batch: the config its summary.json or
    batch.json recorded, else the one its preset and options give with today's presets (a batch
    written before summaries carried their config, whose batch.json was not kept)."""
    from .learning import UsageError, comparable, recorded_config, trainer_config

    config, source = summary.get("config"), "summary.json"
    batch_file = os.path.join(folder, "batch.json")
    if config is None and os.path.exists(batch_file):
        with open(batch_file) as f:
            config, source = json.load(f)["config"], "batch.json"
    if config is None:
        try:
            config = comparable(trainer_config(summary["preset"], summary["overrides"]))
        except UsageError as e:
            raise GamesError(f"{folder}: its preset and options no longer make a config: {e}") from None
        source = "resolved from its preset and options as dqnfast has them today"
    return {"config": {k: v for k, v in recorded_config(config).items() if k != "env_id"}, "config_source": source}


def load_batch(folder: str) -> Dict[str, Any]:
    path = os.path.join(folder, "summary.json")
    if not os.path.isfile(path):
        raise GamesError(f"{folder}: no summary.json (not a finished `dqnfast bench learning` batch)")
    with open(path) as f:
        summary = json.load(f)
    game = anchors.game_name(summary["env_id"])
    if game not in anchors.ANCHORS:
        raise GamesError(f"{folder}: {summary['env_id']} is not one of the Atari 100k games with published scores")
    seeds = {int(s): float(v) for s, v in summary["per_seed_mean"].items()}
    if not seeds:
        raise GamesError(f"{folder}: no seed finished")
    return {"folder": folder, "game": game, "env_id": summary["env_id"], "preset": summary["preset"],
            "per_seed_mean": seeds, "differences": list(summary.get("differences", [])),
            **batch_setting(folder, summary)}


def check_one_setting(batches: List[Dict[str, Any]]) -> None:
    from .learning import differing_fields

    games = [b["game"] for b in batches]
    twice = sorted({g for g in games if games.count(g) > 1})
    if twice:
        raise GamesError(f"one batch a game: {', '.join(twice)} "
                         f"({'; '.join(b['folder'] for b in batches if b['game'] in twice)})")
    first = batches[0]
    for b in batches[1:]:
        if b["preset"] != first["preset"]:
            raise GamesError(f"{b['folder']} ran preset {b['preset']!r}, {first['folder']} {first['preset']!r}: "
                             "one setting across games")
        differ = differing_fields(first["config"], b["config"])
        if differ:
            shown = ", ".join(f"{k} {first['config'].get(k)!r} ({first['game']}) against {b['config'].get(k)!r} "
                              f"({b['game']})" for k in differ)
            raise GamesError(f"{first['folder']} and {b['folder']} ran different settings: {shown}; "
                             "one setting across games")


def over_games(values: Sequence[float]) -> Dict[str, float]:
    """median, IQM (scipy's trim_mean 0.25, as :mod:`.aggregate`) and mean of one figure a game."""
    x = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(x)), "iqm": aggregate.iqm(x), "mean": float(x.mean())}


def setting_label(preset: str, config: Dict[str, Any]) -> str:
    """The preset's name, then each field where the batches' config departs from that preset as
    dqnfast has it today (``atari100k with frame_size=84, shift=4``): two settings of one preset,
    judged on the same games, read apart."""
    from .learning import UsageError, comparable, differing_fields, recorded_config, trainer_config

    try:
        base = recorded_config(comparable(trainer_config(preset, [])))
    except UsageError:  # a preset dqnfast no longer has: its name is all there is to say
        return preset
    changed = [f"{k}={config[k]}" for k in differing_fields(config, base, ignore=("env_id",)) if k in config]
    return f"{preset} with {', '.join(changed)}" if changed else preset


def merged_differences(batches: Sequence[Dict[str, Any]]) -> List[str]:
    """Every batch's differences from the protocol, each once. Batches written by different versions
    of dqnfast can word one difference twice, the newer wording extending the older ("evaluation
    epsilon 0.001, not 0.05" and "... not 0.05 (DrQ(ε)'s ε_eval, ...)"): a line that another line
    extends is the same difference, and is left out."""
    lines = {d for b in batches for d in b["differences"]}
    return sorted(d for d in lines if not any(other != d and other.startswith(d) for other in lines))


def judge(folders: Sequence[str]) -> Dict[str, Any]:
    if not folders:
        raise GamesError("name at least one batch folder")
    batches = sorted((load_batch(f) for f in folders), key=lambda b: b["game"])
    check_one_setting(batches)
    rows = []
    for b in batches:
        ref = anchors.ANCHORS[b["game"]]
        score = float(np.mean(list(b["per_seed_mean"].values())))
        rows.append({"game": b["game"], "folder": b["folder"], "seeds": sorted(b["per_seed_mean"]),
                     "per_seed_mean": {str(s): v for s, v in sorted(b["per_seed_mean"].items())},
                     "score": score, "hns": anchors.human_normalised(score, b["game"]),
                     "human": ref["human"], "random": ref["random"],
                     "agents": {a: {"score": ref[a], "hns": anchors.human_normalised(ref[a], b["game"])} for a in AGENTS},
                     "ahead_of": [a for a in AGENTS if score > ref[a]],
                     "config_source": b["config_source"]})
    ours = over_games([r["hns"] for r in rows])
    published = {a: over_games([r["agents"][a]["hns"] for r in rows]) for a in AGENTS}
    return {
        "preset": batches[0]["preset"], "setting": setting_label(batches[0]["preset"], batches[0]["config"]),
        "config": batches[0]["config"], "games": rows,
        "missing_games": sorted(set(anchors.ANCHORS) - {r["game"] for r in rows}),
        "hns": ours, "published_hns": published,
        "ahead_of": {a: sum(a in r["ahead_of"] for r in rows) for a in AGENTS},
        "above_random": sum(r["hns"] > 0 for r in rows), "at_or_above_human": sum(r["hns"] >= 1 for r in rows),
        "differences": merged_differences(batches),
        "note": "statistics over games of per-game means (the published agents': over their 100 runs a game); "
                "HNS = (score - random) / (human - random)",
    }


def report(result: Dict[str, Any]) -> str:
    """The result as markdown: a table of games, then the statistics over them."""
    head = "| game | seeds | score | HNS | " + " | ".join(AGENTS) + " | ahead of |"
    lines = [f"`{result['setting']}` on {len(result['games'])} Atari 100k games", "", head,
             "|---|---:|---:|---:|" + "---:|" * len(AGENTS) + "---|"]
    for r in result["games"]:
        agents = " | ".join(f"{r['agents'][a]['score']:,.1f}" for a in AGENTS)
        lines.append(f"| {r['game']} | {len(r['seeds'])} | {r['score']:,.2f} | {r['hns']:.2f} | {agents} | "
                     f"{', '.join(r['ahead_of']) or '-'} |")
    lines += ["", "| human-normalised, over these games | " + " | ".join(STATISTICS) + " | the setting ahead on |",
              "|---|" + "---:|" * (len(STATISTICS) + 1)]
    n = len(result["games"])
    lines.append(f"| {result['setting']} | " + " | ".join(f"{result['hns'][s]:.3f}" for s in STATISTICS) + " | |")
    for a in AGENTS:
        lines.append(f"| {a} | " + " | ".join(f"{result['published_hns'][a][s]:.3f}" for s in STATISTICS)
                     + f" | {result['ahead_of'][a]} of {n} |")
    lines += ["", f"above random on {result['above_random']} of {n}, at or above human on "
                  f"{result['at_or_above_human']} of {n}; {result['note']}"]
    if result["missing_games"]:
        lines.append(f"not run: {', '.join(result['missing_games'])}")
    resolved = [r["game"] for r in result["games"] if r["config_source"].startswith("resolved")]
    if resolved:
        lines.append(f"settings of {', '.join(resolved)}: resolved from the preset and options they ran with, "
                     "as dqnfast has them today (their batches recorded no config)")
    if result["differences"]:
        lines += ["differences from the published protocol:"] + [f"  - {d}" for d in result["differences"]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dqnfast bench games", description=__doc__.split("\n\n")[0])
    p.add_argument("batches", nargs="+", metavar="BATCH", help="`dqnfast bench learning` output folders, one a game")
    p.add_argument("--against", nargs="+", metavar="BATCH", default=None,
                   help="batches of a second setting: print the two paired on the games both ran "
                        "(differences over games with bootstrap CIs, sign test, probability of improvement) "
                        "instead of the first setting's table")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the result as JSON")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        result = judge(args.batches)
        if args.against:
            second = judge(args.against)
            comparison = versus.compare(result, second)
            result = {"first": result, "second": second, "comparison": comparison}
    except (GamesError, versus.ComparisonError) as e:
        print(f"dqnfast bench games: {e}", file=sys.stderr)
        return 2
    print(versus.report(result["comparison"]) if args.against else report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, ensure_ascii=False)
    return 0

