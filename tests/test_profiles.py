"""One Profile concept (studies/common/profiles.py): each study's profiles derive from one base and are picked
the same way; the CLI's choices are the studies' own PROFILES (no second list)."""
from __future__ import annotations

from dataclasses import dataclass

import click
import pytest

from steer_trace.errors import UserError
from studies.behaviours import profiles as behaviour_profiles
from studies.behaviours.cli import group as behaviours_group
from studies.common.profiles import PAPER_N_LAYERS, Profile, pick
from studies.skills import profiles as skills_profiles
from studies.skills.cli import group as skills_group


@dataclass(frozen=True)
class Toy(Profile):
    n: int
    tag: str = "a"


TOYS = {"small": Toy("small", 2), "big": Toy("big", 200)}


def test_pick_overrides_what_is_given_and_keeps_the_rest():
    assert pick(TOYS, "small", ("n",), n=None, tag="b") == Toy("small", 2, "b")
    assert pick(TOYS, "big", ("n",), n=3) == Toy("big", 3)


def test_pick_names_the_problem():
    with pytest.raises(UserError, match=r"unknown profile 'huge' \(one of small, big\)"):
        pick(TOYS, "huge")
    with pytest.raises(UserError, match="--n must be at least 1"):
        pick(TOYS, "small", ("n",), n=0)


def test_both_studies_use_the_one_base():
    for profiles in (behaviour_profiles.PROFILES, skills_profiles.PROFILES):
        assert profiles and all(isinstance(p, Profile) and p.name == name for name, p in profiles.items())
    assert behaviour_profiles.make_profile("test", n_test=3, batch_size=2).n_test == 3
    assert skills_profiles.make_profile("quick", n_eval=3).sweep_tokens is None


def test_the_cli_offers_the_studies_profiles():
    def choices(command):
        option = next(p for p in command.params if p.name == "profile")
        assert isinstance(option.type, click.Choice)
        return list(option.type.choices)

    assert choices(behaviours_group.commands["single"]) == list(behaviour_profiles.PROFILES)
    assert choices(behaviours_group.commands["report"]) == list(behaviour_profiles.PROFILES)
    assert choices(skills_group.commands["sweep"]) == list(skills_profiles.PROFILES)


def test_the_paper_layer_numbering_is_one_number():
    assert PAPER_N_LAYERS == 32
    assert behaviour_profiles.model_layer(10, 30) == 9 and skills_profiles.relative_layer(15, 30) == 14
