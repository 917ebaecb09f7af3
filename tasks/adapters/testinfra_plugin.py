"""Loaded into every acceptance test run (``pytest -p amis_acceptance``).

- The ``instance`` marker: a test that needs a real instance of the AMI
  (a service running, a package installed). On the sandbox's stand-in,
  which runs commands on the build machine, such tests are skipped with
  the reason shown, never faked.
- The ``ami`` fixture: the image, AMI and region under test.
"""

from __future__ import annotations

import os

import pytest

STAND_IN = "AMI_TEST_STAND_IN"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "instance: needs a real instance of the AMI (skipped "
                                       "on the sandbox's stand-in)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    where = os.environ.get(STAND_IN)
    if not where:
        return
    skip = pytest.mark.skip(reason=f"needs a real instance of the AMI; the sandbox's stand-in "
                                   f"({where}) runs on the build machine")
    for item in items:
        if item.get_closest_marker("instance"):
            item.add_marker(skip)


@pytest.fixture
def ami() -> dict[str, str]:
    """{"image": ..., "ami": ..., "region": ...} of the AMI under test."""
    return {"image": os.environ.get("AMI_TEST_IMAGE", ""),
            "ami": os.environ.get("AMI_TEST_AMI", ""),
            "region": os.environ.get("AMI_TEST_REGION", "")}
