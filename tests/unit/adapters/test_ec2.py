"""The real EC2 adapter's requests, checked with botocore's Stubber (no
network): what each typed method asks EC2 for, and how a reply is read."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from support.project import ROOT
from tasks.adapters.aws import AwsSession
from tasks.adapters.ec2 import BotoEc2
from tasks.core.cloud import Grant
from tasks.core.errors import AmiError
from tasks.core.settings import load_settings


@pytest.fixture
def stubbed(monkeypatch):
    client = boto3.client("ec2", region_name="eu-west-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    aws = AwsSession(load_settings(ROOT, {"AMI_BUCKET": "stub-bucket"}), lambda: None)
    monkeypatch.setattr(aws, "client", lambda *_, **__: client)
    with Stubber(client) as stub:
        yield BotoEc2(aws), stub
        stub.assert_no_pending_responses()


def test_hardening_requires_imdsv2_on_the_ami(stubbed):
    ec2, stub = stubbed
    stub.add_response("modify_image_attribute", {},
                      {"ImageId": "ami-11111111", "ImdsSupport": {"Value": "v2.0"}})
    ec2.harden("eu-west-1", "ami-11111111")


def test_describe_reads_tags_dates_snapshots_and_deprecation(stubbed):
    ec2, stub = stubbed
    stub.add_response("describe_images", {"Images": [{
        "ImageId": "ami-11111111", "State": "disabled", "OwnerId": "123456789012",
        "CreationDate": "2026-01-01T00:00:05.000Z", "DeprecationTime": "2026-02-01T00:00:00Z",
        "Tags": [{"Key": "Image", "Value": "web"}],
        "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-1"}}]}]},
        {"Owners": ["self"], "IncludeDisabled": True,
         "Filters": [{"Name": "image-id", "Values": ["ami-11111111"]}]})
    found = ec2.describe("eu-west-1", ["ami-11111111"], own=True)["ami-11111111"]
    assert found.state == "disabled" and found.tags == {"Image": "web"}
    assert found.snapshots == ("snap-1",) and found.created.year == 2026
    assert found.deprecated_at.month == 2


def test_grants_are_revoked_as_ec2_names_them(stubbed):
    ec2, stub = stubbed
    stub.add_response("modify_image_attribute", {}, {
        "ImageId": "ami-11111111",
        "LaunchPermission": {"Remove": [{"Group": "all"}, {"UserId": "111122223333"}]}})
    stub.add_response("modify_snapshot_attribute", {}, {
        "SnapshotId": "snap-1", "Attribute": "createVolumePermission",
        "OperationType": "remove", "GroupNames": ["all"]})
    ec2.revoke_launch_grants("eu-west-1", "ami-11111111",
                             [Grant("Group", "all"), Grant("UserId", "111122223333")])
    ec2.revoke_volume_grant("eu-west-1", "snap-1", Grant("Group", "all"))


def test_a_refusal_is_one_line_saying_what_was_done(stubbed):
    ec2, stub = stubbed
    stub.add_client_error("deregister_image", "UnauthorizedOperation", "not allowed")
    with pytest.raises(AmiError, match=r"^deregistering ami-11111111: UnauthorizedOperation: "
                                       r"not allowed: grant the build role access"):
        ec2.deregister("eu-west-1", "ami-11111111", ["snap-1"])
