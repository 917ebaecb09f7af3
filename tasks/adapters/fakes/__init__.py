"""Stand-ins for the adapters, shipped beside them for tests (as invoke
ships ``MockContext`` beside ``Context``), one per port:

- ``store``: :class:`MemoryStore`, the bucket in a dict (``s3.Store``);
- ``aws``: :class:`FakeEc2`, :class:`FakeSsm`, :class:`FakeKms`,
  :class:`FakeIdentity` (``ec2.Ec2``, ``ssm.Ssm``, ``kms.Kms``,
  ``aws.Identity``);
- ``packer``: :class:`ScriptedPacker` (``packer.PackerRunner``);
- ``tools``: :class:`ScriptedTools` and :class:`FakeGit` (``tools.Tools``,
  ``git.Git``);
- ``testrun``: :class:`ScriptedTests` (``testrun.TestRunner``) and
  :class:`FakeStandIn` (``standin.StandIn``).
"""

from .aws import FakeEc2, FakeIdentity, FakeKms, FakeSsm
from .packer import Build, ScriptedPacker, runner_tags, variables
from .store import MemoryStore
from .testrun import FakeStandIn, Script, ScriptedTests
from .tools import FakeGit, ScriptedTools

__all__ = ("Build", "FakeEc2", "FakeGit", "FakeIdentity", "FakeKms", "FakeSsm", "FakeStandIn",
           "MemoryStore", "Script", "ScriptedPacker", "ScriptedTests", "ScriptedTools",
           "runner_tags", "variables")
