"""The IAM policies we publish (iam/*.json), proven under enforcement: moto
checks every request's signature and the user's policy. The pipeline runs
with a user holding exactly the build policy (gc with exactly the gc
policy); then each action is removed in turn and the first request that
needed it is sent again: it must be denied, unless the README says why the
action stays.

moto evaluates resources for S3 only (it checks EC2, SSM and Auto Scaling
requests against "*"), and a Condition it cannot evaluate; the published
policies use no conditions, and here their non-S3 resources read "*"."""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

import boto3
import pytest

from support.project import ROOT, Project, base_env, commit, copy_project, ok
from support.faultproxy import FaultProxy
from tasks.adapters import emulator

BUCKET, PREFIX, REGION = "iam-amis", "amis", "eu-west-1"
POLICIES = {"builder": "iam/build-policy.json", "collector": "iam/gc-policy.json",
            "verifier": "iam/verify-policy.json", "revoker": "iam/revoke-policy.json"}


def policy(path: str) -> dict:
    text = (ROOT / path).read_text().replace("BUCKET", BUCKET).replace("SSM_PREFIX", PREFIX)
    doc = json.loads(text.replace("PREFIX", PREFIX))
    for statement in doc["Statement"]:
        if not any(a.startswith("s3:") for a in statement["Action"]):
            statement["Resource"] = "*"
    return doc


def iam_action(request) -> tuple[str, str] | None:
    """(access key, IAM action) of a signed request, as AWS would name it."""
    m = re.search(r"Credential=([^/]+)/\d+/[^/]+/([^/]+)/", request.headers.get("Authorization", ""))
    if not m:
        return None
    key, service = m.groups()
    if service == "s3":
        parts = urllib.parse.unquote(request.path).lstrip("/").split("/", 1)
        on_key = len(parts) == 2 and parts[1] != ""
        action = {("GET", True): "GetObject", ("HEAD", True): "GetObject",
                  ("PUT", True): "PutObject", ("DELETE", True): "DeleteObject",
                  ("GET", False): "ListBucket"}.get((request.method, on_key))
        return (key, f"s3:{action}") if action else None
    target = request.headers.get("X-Amz-Target")
    if target:
        return key, f"{service}:{target.split('.')[-1]}"
    # a query API names its action; a REST one (Batch) its path: /v1/describecomputeenvironments
    return key, f"{service}:{request.action or request.path.rstrip('/').rsplit('/', 1)[-1]}"


class Enforced:
    """An emulator enforcing IAM, a recording proxy in front, and the users."""

    def __init__(self, work: Path) -> None:
        port = emulator.free_port()
        self.server = emulator.spawn(port, ROOT, log=work / "moto.log")
        emulator.wait_until_listening(port, self.server)
        self.direct = f"http://127.0.0.1:{port}"
        self.proxy = FaultProxy(self.direct)
        kw = dict(endpoint_url=self.direct, region_name=REGION, aws_access_key_id="setup",
                  aws_secret_access_key="setup")
        self.iam = boto3.client("iam", **kw)
        boto3.client("s3", **kw).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.keys = {}
        for user, path in {**POLICIES, "admin": None}.items():
            self.iam.create_user(UserName=user)
            doc = policy(path) if path else {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            self.iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(doc))
            key = self.iam.create_access_key(UserName=user)["AccessKey"]
            self.keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        urllib.request.urlopen(urllib.request.Request(
            f"{self.direct}/moto-api/reset-auth", data=b"0", method="POST",
            headers={"Content-Type": "text/plain"}), timeout=10).read()
        self.admin = {s: boto3.client(s, endpoint_url=self.direct, region_name=REGION,
                                      aws_access_key_id=self.keys["admin"][0],
                                      aws_secret_access_key=self.keys["admin"][1])
                      for s in ("iam", "ec2", "ssm", "s3", "kms")}
        self.signing_key = self.admin["kms"].create_key(
            KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]

    def env(self, user: str) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.keys[user][0],
                "AWS_SECRET_ACCESS_KEY": self.keys[user][1]}

    def close(self) -> None:
        self.proxy.close()
        self.server.terminate()
        self.server.wait(timeout=10)


@pytest.fixture(scope="module")
def enforced(tmp_path_factory):
    e = Enforced(tmp_path_factory.mktemp("iam"))
    yield e
    e.close()


@pytest.fixture(scope="module")
def pipeline(enforced, tmp_path_factory):
    """The whole pipeline, as the two roles, through the recording proxy."""
    tmp = tmp_path_factory.mktemp("pipeline")
    env = base_env(tmp)
    env.update({"AWS_ENDPOINT_URL": enforced.proxy.url, "AMI_SANDBOX": "1", "AMI_BUCKET": BUCKET,
                "AMI_PREFIX": PREFIX, "AMI_SSM_PREFIX": f"/{PREFIX}", "AMI_SKIP_VALIDATE": "1",
                "AMI_SIGNING_KEY": enforced.signing_key, **enforced.env("builder")})
    project = Project(copy_project(tmp / "repo"), env, tmp / "runs")
    said = {}
    said["build"] = ok(project.doit("amis")).stdout
    role = project.path / "ansible/roles/web_app/defaults/main.yml"
    original = role.read_text()
    role.write_text(original + "\nweb_extra: 1\n")
    commit(project.path)
    said["rebuild"] = ok(project.doit("amis")).stdout
    role.write_text(original)
    commit(project.path)
    said["reuse"] = ok(project.doit("amis")).stdout                  # a revert: by digest
    said["clone"] = ok(project.clone(tmp / "clone").doit("amis")).stdout
    said["promote"] = ok(project.doit("promote", "-i", "web", "-f", "main", "-t",
                                      "staging")).stdout
    playbook = project.path / "ansible/base_ami.yaml"
    playbook.write_text(playbook.read_text() + "\n# a new generation\n")
    commit(project.path)
    said["tree"] = ok(project.doit("amis")).stdout
    said["verify"] = ok(project.doit("verify", "-i", "web", env=enforced.env("verifier"))).stdout
    amis_yaml = project.path / "amis.yaml"                       # deploy removed: gc retires it
    amis_yaml.write_text(re.sub(r"  deploy:\n    parent: base\n(    .*\n)*", "",
                                amis_yaml.read_text()))
    commit(project.path)
    ec2 = enforced.admin["ec2"]
    web = enforced.admin["ssm"].get_parameter(Name=f"/{PREFIX}/main/web")["Parameter"]["Value"]
    ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={
        "ImageId": f"resolve:ssm:/{PREFIX}/main/web"})
    ec2.create_key_pair(KeyName="packer_left-behind")
    ec2.create_security_group(GroupName="packer_left-behind", Description="left behind")
    ec2.run_instances(ImageId="ami-bb9a6bc2", MinCount=1, MaxCount=1, KeyName="packer_left-behind")
    collector = {**enforced.env("collector")}
    said["gc dry run"] = ok(project.doit("gc", "--keep", "1", "--days", "0", "--leftover-hours",
                                         "0", env=collector)).stdout
    said["gc"] = ok(project.doit("gc", "--keep", "1", "--days", "0", "--leftover-hours", "0",
                                 "--apply", env=collector)).stdout
    revoker = {**enforced.env("revoker")}
    said["revoke"] = ok(project.doit("revoke", "-i", "worker", "-r", "drill", "--disable",
                                     env=revoker)).stdout
    said["undo"] = ok(project.doit("revoke", "-i", "worker", "--undo", env=revoker)).stdout
    return said, web


def test_the_published_policies_are_what_the_pipeline_needs(pipeline, enforced):
    """Enough for the whole pipeline, and each action needed, for the builder
    and the collector (one test: the pipeline they share takes half a
    minute, and test workers would each run their own)."""
    _the_whole_pipeline_runs_under_enforcement(pipeline, enforced)
    for user in sorted(POLICIES):
        _each_action_is_needed(enforced, user)


def _the_whole_pipeline_runs_under_enforcement(pipeline, enforced) -> None:
    said, web = pipeline
    built = lambda out: re.findall(r"^(\w+)\s+ami-\w+\s+built\b", out, re.M)   # noqa: E731
    assert sorted(built(said["build"])) == ["base", "build", "deploy", "web", "worker"]
    assert built(said["rebuild"]) == ["web"]
    assert "reused ami-" in said["reuse"] and built(said["reuse"]) == []
    assert built(said["clone"]) == [] and said["clone"].count("up to date") >= 5
    assert "[web] channel staging:" in said["promote"]
    assert [l.split()[0] for l in said["verify"].splitlines() if "signature ok" in l] == [
        "web", "base"], said["verify"]
    assert re.match(r"ami-\w+", web)                                       # SSM written
    assert "would delete" in said["gc dry run"]
    assert re.search(r"deleted [1-9]\d* AMI\(s\)", said["gc"]), said["gc"]
    assert "removed leftover: eu-west-1: key pair packer_left-behind" in said["gc"]
    assert re.search(r"retired deploy \(ami-\w+\) from channel main", said["gc"]), said["gc"]
    assert re.search(r"^revoked ami-\w+ \(worker, eu-west-1\)$", said["revoke"], re.M), said
    assert re.search(r"^restored ami-\w+$", said["undo"], re.M), said["undo"]
    denied = [r for r in enforced.proxy.seen if r.path.endswith("AccessDenied")]
    assert denied == []


def _stays(readme: str) -> dict[str, str]:
    """Actions the README keeps though the emulated pipeline never sends them."""
    table = readme.split("### Why these actions stay", 1)[1].split("\n## ", 1)[0]
    return {a: why for row in re.findall(r"^\| (.+?) \| (.+?) \|$", table, re.M)
            for a, why in [row] for a in re.findall(r"`([a-z0-9]+:\w+)`", a)}


def _replay(url: str, request) -> tuple[int, bytes]:
    host, port = urllib.parse.urlparse(url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {k: v for k, v in request.headers.items()
               if k.lower() not in ("expect", "connection", "transfer-encoding", "content-length")}
    headers["Content-Length"] = str(len(request.body))
    conn.request(request.method, request.raw, body=request.body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def _each_action_is_needed(enforced, user: str) -> None:
    stays = _stays((ROOT / "docs/security.md").read_text())
    key = enforced.keys[user][0]
    first: dict[str, object] = {}
    for request in enforced.proxy.seen:
        found = iam_action(request)
        if found and found[0] == key:
            first.setdefault(found[1], request)
    doc = policy(POLICIES[user])
    actions = [a for statement in doc["Statement"] for a in statement["Action"]]
    unneeded = []
    for action in actions:
        if action not in first:
            assert action in stays, f"{action} is never sent and the README does not say why it stays"
            continue
        # Control: with the whole policy the same request is not refused (it may
        # fail otherwise: the AMI it deregistered is gone by now).
        status, body = _replay(enforced.direct, first[action])
        assert status != 403, (action, body[:300])
        smaller = json.loads(json.dumps(doc))
        for statement in smaller["Statement"]:
            statement["Action"] = [a for a in statement["Action"] if a != action]
        smaller["Statement"] = [s for s in smaller["Statement"] if s["Action"]]
        enforced.admin["iam"].put_user_policy(UserName=user, PolicyName="p",
                                              PolicyDocument=json.dumps(smaller))
        try:
            status, body = _replay(enforced.direct, first[action])
        finally:
            enforced.admin["iam"].put_user_policy(UserName=user, PolicyName="p",
                                                  PolicyDocument=json.dumps(doc))
        if status != 403 or not re.search(rb"AccessDenied|not authorized", body):
            unneeded.append(f"{action} (got {status})")
    assert unneeded == []
    assert len(first) >= {"builder": 20, "collector": 15, "verifier": 3, "revoker": 5}[user]


def test_the_readme_shows_the_published_policies():
    readme = (ROOT / "docs/security.md").read_text()
    for path in POLICIES.values():
        assert (ROOT / path).read_text().strip() in readme, f"{path} differs from the README"
