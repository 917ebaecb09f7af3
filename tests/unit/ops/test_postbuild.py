"""What a build made, checked before it is published, on the fake EC2:
only this build's AMIs, each hardened, shared with nobody it may not be."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tasks.adapters.fakes import FakeEc2
from tasks.core.cloud import Grant
from tasks.core.errors import AmiError
from tasks.ops import postbuild

STARTED = datetime(2026, 1, 1, tzinfo=timezone.utc)
TAGS = {"Image": "web", "Digest": "d" * 64, "ManagedBy": "amis-doit"}


def built(ec2: FakeEc2, region: str, **changes) -> str:
    made = {"tags": TAGS, "created": STARTED + timedelta(seconds=5), **changes}
    return ec2.add_ami(region, **made).id


def test_every_built_ami_is_hardened_and_its_grants_checked():
    ec2 = FakeEc2()
    amis = {"eu-west-1": built(ec2, "eu-west-1"), "us-east-1": built(ec2, "us-east-1")}
    postbuild.vet(ec2, "web", (), "d" * 64, STARTED, amis)
    assert ec2.hardened == set(amis.items())
    assert [c for c in ec2.calls if c[0] == "launch_grants"] == \
        [("launch_grants", r, a) for r, a in amis.items()]


def test_an_ami_this_build_did_not_make_is_refused():
    ec2 = FakeEc2()
    older = built(ec2, "eu-west-1", created=STARTED - timedelta(hours=1))
    with pytest.raises(AmiError, match=rf"image web: Packer named eu-west-1:{older}, which this "
                                       "build did not make"):
        postbuild.vet(ec2, "web", (), "d" * 64, STARTED, {"eu-west-1": older})
    other = built(ec2, "eu-west-1", tags={**TAGS, "Digest": "e" * 64})
    with pytest.raises(AmiError, match="which this build did not make"):
        postbuild.vet(ec2, "web", (), "d" * 64, STARTED, {"eu-west-1": other})
    with pytest.raises(AmiError, match="which does not exist"):
        postbuild.vet(ec2, "web", (), "d" * 64, STARTED, {"eu-west-1": "ami-0000dead"})


def test_sharing_amis_yaml_does_not_allow_is_revoked_and_nothing_published():
    ec2 = FakeEc2()
    ami = built(ec2, "eu-west-1")
    snapshot = ec2.ami("eu-west-1", ami).snapshots[0]
    ec2.share("eu-west-1", ami, Grant("Group", "all"), Grant("UserId", "111122223333"))
    ec2.volume_grant["eu-west-1", snapshot] = [Grant("UserId", "444455556666")]
    with pytest.raises(AmiError, match=r"image web: the build shared eu-west-1:\S+ with "
                                       r"everyone, snapshot eu-west-1:\S+ with 444455556666, "
                                       r"which amis.yaml does not allow \(share_with: "
                                       r"111122223333\); revoked"):
        postbuild.vet(ec2, "web", ("111122223333",), "d" * 64, STARTED, {"eu-west-1": ami})
    assert ec2.launch_grant["eu-west-1", ami] == [Grant("UserId", "111122223333")]
    assert ec2.volume_grant["eu-west-1", snapshot] == []


def test_a_failed_build_discards_only_what_it_provably_made():
    ec2 = FakeEc2()
    mine = built(ec2, "eu-west-1")
    theirs = built(ec2, "eu-west-1", tags={**TAGS, "Image": "base"})
    snapshots = ec2.ami("eu-west-1", mine).snapshots
    removed = postbuild.discard(ec2, "web", "d" * 64, STARTED,
                                [("eu-west-1", mine), ("eu-west-1", theirs)])
    assert removed == [f"eu-west-1:{mine}"]
    assert ec2.ami("eu-west-1", mine) is None and ec2.ami("eu-west-1", theirs) is not None
    assert not {("eu-west-1", s) for s in snapshots} & ec2.snapshots
