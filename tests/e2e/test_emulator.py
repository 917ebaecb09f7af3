"""What our tests take from the emulator, each pinned by one check that names
moto when a lock update changes it: without these, a regression shows up as
a puzzling AccessDenied or a refused source AMI deep in an end-to-end test.

- Under IAM enforcement, ``s3:ListBucket`` allows ListObjectsV2, as AWS has
  it (moto 5.2.6 asks for an ``s3:ListObjectsV2`` that AWS does not have).
  Every IAM proof in ``test_iam.py`` lists the bucket.
- An AMI made by CreateImage has the root device type ``ebs`` (with the
  sandbox's patch: moto says ``standard``, and Packer refuses that source).
- S3 conditional writes answer 412, which the registry and locks rely on."""

from __future__ import annotations

import json
import urllib.request
from importlib.metadata import version

import boto3
import botocore.exceptions
import pytest

from support.project import REGION, ROOT
from tasks.adapters import emulator

MOTO = f"moto {version('moto')}"
LOCK = "requirements/run.in and requirements/lock.txt"


@pytest.fixture(scope="module")
def enforcing(tmp_path_factory):
    """An emulator of its own (enforcement is server-wide), with one user
    allowed s3:ListBucket on one bucket and nothing else."""
    port = emulator.free_port()
    server = emulator.spawn(port, ROOT, log=tmp_path_factory.mktemp("emulator") / "moto.log")
    try:
        emulator.wait_until_listening(port, server)
        url = f"http://127.0.0.1:{port}"
        setup = dict(endpoint_url=url, region_name=REGION,
                     aws_access_key_id="setup", aws_secret_access_key="setup")
        boto3.client("s3", **setup).create_bucket(
            Bucket="listed", CreateBucketConfiguration={"LocationConstraint": REGION})
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="lister")
        iam.put_user_policy(UserName="lister", PolicyName="list", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "s3:ListBucket",
                "Resource": "arn:aws:s3:::listed"}]}))
        key = iam.create_access_key(UserName="lister")["AccessKey"]
        urllib.request.urlopen(urllib.request.Request(
            f"{url}/moto-api/reset-auth", data=b"0", method="POST",
            headers={"Content-Type": "text/plain"}), timeout=10).read()
        yield boto3.client("s3", endpoint_url=url, region_name=REGION,
                           aws_access_key_id=key["AccessKeyId"],
                           aws_secret_access_key=key["SecretAccessKey"])
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_list_bucket_allows_listing_under_enforcement(enforcing):
    try:
        enforcing.list_objects_v2(Bucket="listed", Prefix="channels/main/")
    except botocore.exceptions.ClientError as e:
        pytest.fail(f"{MOTO} denies ListObjectsV2 to a user allowed s3:ListBucket on the bucket "
                    f"({e.response['Error']['Code']}); AWS allows it, and our IAM proofs rely on "
                    f"it: keep moto at a release that judges it as AWS does ({LOCK})",
                    pytrace=False)


def test_listing_is_all_that_policy_allows(enforcing):
    """The check above can fail: enforcement is on, and denies what is not granted."""
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        enforcing.put_object(Bucket="listed", Key="k", Body=b"x")


def test_an_image_made_by_create_image_has_an_ebs_root_device(aws):
    instance = aws.ec2.run_instances(ImageId="ami-03cf127a", MinCount=1, MaxCount=1,
                                     InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    ami = aws.ec2.create_image(InstanceId=instance, Name="rooted")["ImageId"]
    kind = aws.ec2.describe_images(ImageIds=[ami])["Images"][0]["RootDeviceType"]
    assert kind == "ebs", (f"{MOTO} makes AMIs with root device type {kind!r} despite the "
                           "sandbox's patch (tasks/adapters/emulator.py): Packer refuses them "
                           "as a source, so no child image can build on a parent")


def test_a_second_conditional_create_is_refused_with_412(aws):
    aws.make_bucket()
    aws.s3.put_object(Bucket="test-amis", Key="lock", Body=b"a", IfNoneMatch="*")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        aws.s3.put_object(Bucket="test-amis", Key="lock", Body=b"b", IfNoneMatch="*")
    status = refused.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert status == 412, (f"{MOTO} answers a second IfNoneMatch='*' put with {status}, not "
                           "412 PreconditionFailed: the registry's and the locks' "
                           "compare-and-swap rely on it")
