"""Test and benchmark equipment: a fake OpenAI-compatible upstream with switchable faults.

``from crossroads.testing import FakeUpstream`` — see :mod:`crossroads.testing.fake_upstream`.
"""

from crossroads.testing.fake_upstream import FakeUpstream, FakeUpstreamApp, FakeUpstreamConfig
from crossroads.testing.faults import FAULT_KINDS, Fault, parse_fault

__all__ = [
    "FAULT_KINDS",
    "FakeUpstream",
    "FakeUpstreamApp",
    "FakeUpstreamConfig",
    "Fault",
    "parse_fault",
]
