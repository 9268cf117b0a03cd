"""Published Atari 100k scores to compare a `dqnfast bench learning` batch with (one table, its sources).

The agents' figures are scores after 100k agent steps (400k frames) from the per-run data released
with Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical Precipice"
(NeurIPS): DER (data-efficient Rainbow, van Hasselt et al. 2019), DrQ (Kostrikov et al. 2021),
DrQ(ε) (DrQ re-run by Agarwal et al. with smaller ε-greedy values, for training and evaluation,
than DrQ's own) and SPR (Schwarzer et al. 2021). Human and random are the reference scores Atari
100k results are human-normalised with. The figures were taken from the issue that asked for this
runner (issue 18); they have not been re-derived here from the released data.
"""
from __future__ import annotations

import re
from typing import Dict, List, NamedTuple

AGENTS_SOURCE = "Agarwal et al. 2021, per-run Atari 100k data"
REFERENCE_SOURCE = "Atari 100k human/random reference scores"

# game -> {agent: score}; a game missing here gets no reference lines
ANCHORS: Dict[str, Dict[str, float]] = {
    "Breakout": {"DER": 9.2, "DrQ": 15.4, "DrQ(ε)": 19.8, "SPR": 19.6, "human": 30.5, "random": 1.7},
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
