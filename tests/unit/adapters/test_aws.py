"""The AWS adapter: one line for every AWS failure."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("code, hint", [
    ("AccessDenied", "grant the build role access (docs/security.md, IAM policies)"),
    ("NoSuchBucket", "create the bucket or fix AMI_BUCKET"),
    ("RequestLimitExceeded", "AWS is limiting how fast this account calls it, and retries did "
     "not get through: run again in a minute"),
    ("SlowDown", "AWS is limiting how fast this account calls it, and retries did not get "
     "through: run again in a minute"),
    ("InternalError", "a fault on AWS's side: run again"),
    ("InvalidAMIID.Malformed", "see AWS's message for what to fix"),
])
def test_aws_errors_become_one_line_with_what_to_do(code, hint):
    from botocore.exceptions import ClientError

    from tasks.adapters.aws import explain

    err = ClientError({"Error": {"Code": code, "Message": "nope"}}, "GetObject")
    message = str(explain(err, "reading s3://b/channels/main/web.json"))
    assert message == f"reading s3://b/channels/main/web.json: {code}: nope: {hint}"
