"""The AWS adapter: one line for every AWS failure."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("code, hint", [
    ("AccessDenied", "grant the build role access (docs/security.md, IAM policies)"),
    ("NoSuchBucket", "create the bucket or fix AMI_BUCKET"),
])
def test_aws_errors_become_one_line_with_what_to_do(code, hint):
    from botocore.exceptions import ClientError

    from tasks.adapters.aws import explain

    err = ClientError({"Error": {"Code": code, "Message": "nope"}}, "GetObject")
    message = str(explain(err, "reading s3://b/channels/main/web.json"))
    assert message == f"reading s3://b/channels/main/web.json: {code}: nope: {hint}"


def test_a_source_filter_selects_as_ec2_resolves_it(aws, tmp_path, monkeypatch):
    """verify asks EC2 whether the source filter selects an AMI, the way the
    source was resolved: by owners and name pattern."""
    from support.project import REGION
    from tasks.adapters.aws import Aws
    from tasks.core.settings import load_settings
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "test")
    image = aws.ec2.describe_images(Owners=["amazon"])["Images"][0]
    client = Aws(load_settings(tmp_path, {"AWS_ENDPOINT_URL": aws.url}), lambda: aws.url)
    spec = {"owners": ["amazon"], "name_pattern": image["Name"][:4] + "*"}
    assert client.source_selects(spec, REGION, image["ImageId"]) is True
    assert client.source_selects({**spec, "name_pattern": "no such image *"}, REGION,
                                 image["ImageId"]) is False
    assert client.source_selects({**spec, "owners": ["123456789012"]}, REGION,
                                 image["ImageId"]) is False
