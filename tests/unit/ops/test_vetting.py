"""What a build made, checked before it is published."""

from __future__ import annotations

from datetime import datetime, timezone

import boto3
from botocore.stub import Stubber

from support.project import ROOT
from tasks.adapters.aws import Aws
from tasks.core.settings import load_settings
from tasks.ops import vetting


def test_every_built_ami_is_asked_to_require_imdsv2(monkeypatch):
    """moto accepts ImdsSupport but does not keep it, so this checks the calls."""
    ec2 = boto3.client("ec2", region_name="eu-west-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    aws = Aws(load_settings(ROOT, {"AMI_BUCKET": "stub-bucket"}), lambda: None)
    started = datetime(2026, 1, 1, tzinfo=timezone.utc)
    amis = {"eu-west-1": "ami-11111111", "us-east-1": "ami-22222222"}
    image = {"Tags": [{"Key": "Image", "Value": "web"}, {"Key": "Digest", "Value": "d" * 64}],
             "CreationDate": "2026-01-01T00:00:05.000Z", "BlockDeviceMappings": []}
    with Stubber(ec2) as stub:
        for ami in amis.values():
            stub.add_response("describe_images", {"Images": [{**image, "ImageId": ami}]},
                              {"Filters": [{"Name": "image-id", "Values": [ami]}],
                               "IncludeDisabled": True})
        for ami in amis.values():
            stub.add_response("modify_image_attribute", {},
                              {"ImageId": ami, "ImdsSupport": {"Value": "v2.0"}})
            stub.add_response("describe_image_attribute", {"LaunchPermissions": []},
                              {"ImageId": ami, "Attribute": "launchPermission"})
            stub.add_response("describe_images", {"Images": [{**image, "ImageId": ami}]},
                              {"Filters": [{"Name": "image-id", "Values": [ami]}],
                               "IncludeDisabled": True})
        monkeypatch.setattr(aws, "client", lambda *_: ec2)
        vetting.vet(aws, "web", (), "d" * 64, started, amis)
        stub.assert_no_pending_responses()
