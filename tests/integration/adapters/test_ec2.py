"""The real EC2 adapter against the emulator."""

from __future__ import annotations


def test_a_source_filter_selects_as_ec2_resolves_it(aws, tmp_path, monkeypatch):
    """verify asks EC2 whether the source filter selects an AMI, the way the
    source was resolved: by owners and name pattern."""
    from support.project import REGION
    from tasks.adapters.aws import AwsSession
    from tasks.adapters.ec2 import BotoEc2
    from tasks.core.settings import load_settings
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "test")
    image = aws.ec2.describe_images(Owners=["amazon"])["Images"][0]
    ec2 = BotoEc2(AwsSession(load_settings(tmp_path, {"AWS_ENDPOINT_URL": aws.url}),
                             lambda: aws.url))
    pattern, ami = image["Name"][:4] + "*", image["ImageId"]
    assert [i.id for i in ec2.matching(REGION, ["amazon"], pattern, ami)] == [ami]
    assert ec2.matching(REGION, ["amazon"], "no such image *", ami) == []
    assert ec2.matching(REGION, ["123456789012"], pattern, ami) == []
    newest = ec2.matching(REGION, ["amazon"], pattern)
    assert ami in {i.id for i in newest} and all(i.available for i in newest)
