"""Small shared helpers for the tests."""

import random

from hwnas.spaces import SpaceSpec


def random_choices(space: SpaceSpec, rng: random.Random) -> list[str]:
    return [rng.choice(layer.candidates) for layer in space.layers]
