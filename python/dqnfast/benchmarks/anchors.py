"""Published Atari 100k scores to compare a `dqnfast bench learning` batch with (one table, its sources).

The agents' figures are the scores after 100k agent steps (400k frames), each game's mean over the
100 training runs per game that Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (NeurIPS), released (bucket gs://rl-benchmark-data/atari_100k, no longer
public): DER (data-efficient Rainbow, van Hasselt et al. 2019), DrQ (Kostrikov et al. 2021), DrQ(ε)
(DrQ re-run by Agarwal et al. with smaller ε-greedy values, for training and evaluation, than DrQ's
own) and SPR (Schwarzer et al. 2021). Human and random are the reference scores Atari 100k results
are human-normalised with (HUMAN_SCORES / RANDOM_SCORES of rliable's deep_rl_precipice_colab.ipynb).

Where the numbers were read (GitHub copies of the bucket):
  RLE-Foundation/rllte @ ddd76d5ac244097975f55893092027ddba21709f, hsuanwu/evaluation/atari_100k/:
    DER/<Game>.json (each run's last evaluation, iteration 9), DrQ.json, DrQ(eps).json, SPR.json
  eloialonso/iris @ 24326aaaa283c527f42b89b44cfdecf2665a7a16, results/data/:
    HUMAN.json, RANDOM.json; its DrQ(eps).json and SPR.json are the same git blobs as rllte's
tools/atari100k_anchors.py re-derives the table from those files (one decimal, ties away from
zero); its docstring says how to get them and run it.
"""
from __future__ import annotations

import re
from typing import Dict, List, NamedTuple

AGENTS_SOURCE = "Agarwal et al. 2021, per-run Atari 100k data"
REFERENCE_SOURCE = "Atari 100k human/random reference scores"

# game -> {agent: score}, the 26 Atari 100k games spelled as the ALE v5 ids spell them
# ('ALE/Jamesbond-v5', 'ALE/Hero-v5'); a game missing here gets no reference lines.
# Printed by tools/atari100k_anchors.py; edit that, not these numbers.
ANCHORS: Dict[str, Dict[str, float]] = {
    "Alien": {"DER": 802.3, "DrQ": 734.1, "DrQ(ε)": 865.2, "SPR": 841.9, "human": 7127.7, "random": 227.8},
    "Amidar": {"DER": 125.9, "DrQ": 94.2, "DrQ(ε)": 137.8, "SPR": 179.7, "human": 1719.5, "random": 5.8},
    "Assault": {"DER": 561.5, "DrQ": 479.5, "DrQ(ε)": 579.6, "SPR": 565.6, "human": 742.0, "random": 222.4},
    "Asterix": {"DER": 535.4, "DrQ": 535.6, "DrQ(ε)": 763.6, "SPR": 962.5, "human": 8503.3, "random": 210.0},
    "BankHeist": {"DER": 185.5, "DrQ": 153.4, "DrQ(ε)": 232.9, "SPR": 345.4, "human": 753.1, "random": 14.2},
    "BattleZone": {"DER": 8977.0, "DrQ": 10563.6, "DrQ(ε)": 10165.3, "SPR": 14834.1, "human": 37187.5, "random": 2360.0},
    "Boxing": {"DER": -0.3, "DrQ": 6.6, "DrQ(ε)": 9.0, "SPR": 35.7, "human": 12.1, "random": 0.1},
    "Breakout": {"DER": 9.2, "DrQ": 15.4, "DrQ(ε)": 19.8, "SPR": 19.6, "human": 30.5, "random": 1.7},
    "ChopperCommand": {"DER": 925.9, "DrQ": 792.4, "DrQ(ε)": 844.6, "SPR": 946.3, "human": 7387.8, "random": 811.0},
    "CrazyClimber": {"DER": 34508.6, "DrQ": 21991.6, "DrQ(ε)": 21539.0, "SPR": 36700.5, "human": 35829.4, "random": 10780.5},
    "DemonAttack": {"DER": 627.6, "DrQ": 1142.4, "DrQ(ε)": 1321.6, "SPR": 517.6, "human": 1971.0, "random": 152.1},
    "Freeway": {"DER": 20.9, "DrQ": 17.8, "DrQ(ε)": 20.3, "SPR": 19.3, "human": 29.6, "random": 0.0},
    "Frostbite": {"DER": 871.0, "DrQ": 508.1, "DrQ(ε)": 1014.2, "SPR": 1170.7, "human": 4334.7, "random": 65.2},
    "Gopher": {"DER": 467.0, "DrQ": 618.0, "DrQ(ε)": 621.6, "SPR": 660.6, "human": 2412.5, "random": 257.6},
    "Hero": {"DER": 6226.0, "DrQ": 3722.6, "DrQ(ε)": 4167.9, "SPR": 5858.6, "human": 30826.4, "random": 1027.0},
    "Jamesbond": {"DER": 275.7, "DrQ": 251.8, "DrQ(ε)": 349.1, "SPR": 366.5, "human": 302.8, "random": 29.0},
    "Kangaroo": {"DER": 581.7, "DrQ": 974.5, "DrQ(ε)": 1088.4, "SPR": 3617.4, "human": 3035.0, "random": 52.0},
    "Krull": {"DER": 3256.9, "DrQ": 4131.4, "DrQ(ε)": 4402.1, "SPR": 3681.6, "human": 2665.5, "random": 1598.0},
    "KungFuMaster": {"DER": 6580.1, "DrQ": 7154.5, "DrQ(ε)": 11467.4, "SPR": 14783.2, "human": 22736.3, "random": 258.5},
    "MsPacman": {"DER": 1187.4, "DrQ": 1002.9, "DrQ(ε)": 1218.1, "SPR": 1318.4, "human": 6951.6, "random": 307.3},
    "Pong": {"DER": -9.7, "DrQ": -14.3, "DrQ(ε)": -9.1, "SPR": -5.4, "human": 14.6, "random": -20.7},
    "PrivateEye": {"DER": 72.8, "DrQ": 24.8, "DrQ(ε)": 3.5, "SPR": 86.0, "human": 69571.3, "random": 24.9},
    "Qbert": {"DER": 1773.5, "DrQ": 934.2, "DrQ(ε)": 1810.7, "SPR": 866.3, "human": 13455.0, "random": 163.9},
    "RoadRunner": {"DER": 11843.4, "DrQ": 8724.7, "DrQ(ε)": 11211.4, "SPR": 12213.1, "human": 7845.0, "random": 11.5},
    "Seaquest": {"DER": 304.6, "DrQ": 310.5, "DrQ(ε)": 352.3, "SPR": 558.1, "human": 42054.7, "random": 68.4},
    "UpNDown": {"DER": 3075.0, "DrQ": 3619.1, "DrQ(ε)": 4324.5, "SPR": 10859.2, "human": 11693.2, "random": 533.4},
}
SOURCES: Dict[str, str] = {"DER": AGENTS_SOURCE, "DrQ": AGENTS_SOURCE, "DrQ(ε)": AGENTS_SOURCE, "SPR": AGENTS_SOURCE,
                           "human": REFERENCE_SOURCE, "random": REFERENCE_SOURCE}
# what a reader needs to know beside a figure
NOTES: Dict[str, str] = {"DrQ(ε)": "DrQ with smaller ε-greedy values (training and evaluation)"}
STEPS = 100_000  # the agent steps the agents' scores were measured at


class Anchor(NamedTuple):
    agent: str
    score: float
    source: str
    note: str = ""


def human_normalised(score: float, game: str) -> float:
    """``(score - random) / (human - random)`` with the game's reference scores above: 0 is random
    play, 1 the human reference."""
    ref = ANCHORS[game]
    return (score - ref["random"]) / (ref["human"] - ref["random"])


def game_name(env_id: str) -> str:
    """'ALE/Breakout-v5' -> 'Breakout' (also 'BreakoutNoFrameskip-v4', 'Breakout-v4')."""
    name = env_id.split("/")[-1]
    name = re.sub(r"-v\d+$", "", name)
    return re.sub(r"(NoFrameskip|Deterministic)$", "", name)


def anchors_for(env_id: str) -> List[Anchor]:
    """The published scores of ``env_id``'s game, best first; [] for games without any."""
    table = ANCHORS.get(game_name(env_id), {})
    rows = [Anchor(agent, score, SOURCES[agent], NOTES.get(agent, "")) for agent, score in table.items()]
    return sorted(rows, key=lambda a: -a.score)
