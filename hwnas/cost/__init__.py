"""Costs of networks and layers: parameters, MACs, measured latency."""

from .counting import ModelProfile, UnitProfile, count, layer_macs, trainable_params
from .latency import Latency, measure_latency
from .profile import profile_arch

__all__ = [
    "Latency",
    "ModelProfile",
    "UnitProfile",
    "count",
    "layer_macs",
    "measure_latency",
    "profile_arch",
    "trainable_params",
]
