"""gc never deletes an AMI in use: launch templates resolved as EC2
resolves them, and whatever gc cannot prove unused is kept, with the
reason said, and an --apply that had to keep something for that reason
exits non-zero."""

from __future__ import annotations

import json
import re

import pytest

from support.inproc import next_second
from support.project import REGION, failed, ok

SSM = {"AMI_SSM_PREFIX": "/amis"}


def _two_generations(tree) -> dict:
    ok(tree.doit("amis", env=SSM))
    first = json.loads(tree.record("worker").read_text())["amis"][REGION]
    (tree.path / "ansible/base_ami.yaml").write_text(
        (tree.path / "ansible/base_ami.yaml").read_text() + "\n")
    next_second()                          # the emulator dates AMIs to the second
    ok(tree.doit("amis", env=SSM))
    second = json.loads(tree.record("worker").read_text())["amis"][REGION]
    return {"first": first, "second": second}


def _exists(aws, ami: str) -> bool:
    return bool(aws.ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "image-id", "Values": [ami]}])["Images"])


def test_a_launch_template_pinned_to_a_parameter_version_keeps_that_version(tree, aws):
    amis = _two_generations(tree)
    ssm = tree.client("ssm")
    ssm.label_parameter_version(Name="/amis/main/worker", ParameterVersion=1, Labels=["golden"])
    aws.ec2.create_launch_template(LaunchTemplateName="worker-v1", LaunchTemplateData={
        "ImageId": "resolve:ssm:/amis/main/worker:1"})
    dry = ok(tree.doit("gc", "--keep", "1", "--days", "0", env=SSM)).stdout
    line = next(l for l in dry.splitlines() if l.startswith("worker") and amis["first"] in l)
    assert "keep" in line and "launch template worker-v1 v1" in line, dry
    aws.ec2.delete_launch_template(LaunchTemplateName="worker-v1")
    aws.ec2.create_launch_template(LaunchTemplateName="worker-golden", LaunchTemplateData={
        "ImageId": "resolve:ssm:/amis/main/worker:golden"})
    ok(tree.doit("gc", "--keep", "1", "--days", "0", "--apply", env=SSM))
    assert _exists(aws, amis["first"]) and _exists(aws, amis["second"])


def test_what_gc_cannot_prove_unused_it_keeps_and_apply_fails(tree, aws, proxy):
    amis = _two_generations(tree)
    aws.ec2.create_launch_template(LaunchTemplateName="worker-prod", LaunchTemplateData={
        "ImageId": "resolve:ssm:/amis/main/worker"})
    reads = proxy.fail(lambda r: r.headers.get("X-Amz-Target", r.headers.get("x-amz-target"))
                       == "AmazonSSM.GetParameter")
    env = {**SSM, "AWS_ENDPOINT_URL": proxy.url}
    out = failed(tree.doit("gc", "--keep", "1", "--days", "0", "--apply", env=env))
    assert reads.hits >= 1
    assert "cannot prove it unused: launch template worker-prod v1 says " \
           "resolve:ssm:/amis/main/worker, and reading the parameter failed" in out, out
    assert re.match(r"ERROR: gc: kept \d+ AMI\(s\) that could not be proved unused \(launch template "
                    r"worker-prod v1 says", out.strip().splitlines()[-1]), out
    assert _exists(aws, amis["first"])


def test_an_interrupt_during_apply_stops_after_the_ami_in_hand(tree, aws, proxy):
    import threading
    from tasks.adapters.signals import Interrupts
    from tasks.core.errors import AmiError
    ok(tree.doit("amis"))
    for n in range(2):                       # three generations: two of them doomed
        (tree.path / "ansible/base_ami.yaml").write_text(
            (tree.path / "ansible/base_ami.yaml").read_text() + "\n")
        next_second()
        ok(tree.doit("amis"))
    held = proxy.hold(lambda r: r.action == "DeregisterImage")
    interrupts = Interrupts()
    run, out = tree.run({"AWS_ENDPOINT_URL": proxy.url}, interrupts=interrupts)
    errors: list[BaseException] = []

    def collect() -> None:
        try:
            run.collector.collect(True, 1, 0, 20, 6)
        except AmiError as err:
            errors.append(err)
    agent = threading.Thread(target=collect)
    agent.start()
    assert held.arrived.wait(60)
    interrupts.interrupt("SIGTERM")          # Ctrl-C or SIGTERM while an AMI is in hand
    held.release.set()
    agent.join(60)
    assert errors and str(errors[0]).startswith("gc: interrupted: deleted 1 AMI(s) (ami-")
    assert "not deleted, no leftovers removed; run gc --apply again" in str(errors[0])
    assert "not deleted (interrupted)" in out.getvalue()


def test_a_failed_ssm_write_is_repaired_by_the_next_run(tree, aws, proxy):
    ok(tree.doit("amis", env=SSM))
    ssm = tree.client("ssm")
    assert ssm.get_parameter(Name="/amis/main/base")["Parameter"]["Value"] == \
        json.loads(tree.record("base").read_text())["amis"][REGION]
    (tree.path / "ansible/base_ami.yaml").write_text(
        (tree.path / "ansible/base_ami.yaml").read_text() + "\n# changed\n")
    target = lambda r: r.headers.get("X-Amz-Target", r.headers.get("x-amz-target"))  # noqa: E731
    puts = proxy.fail(lambda r: target(r) == "AmazonSSM.PutParameter"
                      and b"/amis/main/base" in r.body)
    broken = failed(tree.doit("ami:base", env={**SSM, "AWS_ENDPOINT_URL": proxy.url}))
    assert puts.hits >= 1, broken
    new = json.loads(aws.objects()["channels/main/base.json"])["amis"][REGION]   # published
    assert ssm.get_parameter(Name="/amis/main/base")["Parameter"]["Value"] != new, broken
    out = ok(tree.doit("ami:base", env=SSM)).stdout
    assert f"repaired SSM parameter /amis/main/base: it now says {new}, as the record does" in out
    assert ssm.get_parameter(Name="/amis/main/base")["Parameter"]["Value"] == new
    assert "repaired SSM" not in ok(tree.doit("ami:base", env=SSM)).stdout


def test_gc_numbers_that_are_not_numbers_are_one_line(tree, aws):
    for option, value in (("--days", "nan"), ("--days", "inf"), ("--leftover-hours", "nan"),
                          ("--leftover-hours", "inf"), ("--days", "-1")):
        out = failed(tree.doit("gc", option, value))
        assert "gc: --keep must be at least 1; --days, --max and --leftover-hours must be " \
               "numbers, not negative (nor nan or inf)" in out, (option, value, out)


def test_gc_takes_a_huge_number_of_days_as_keep_everything(tree, aws):
    ok(tree.doit("amis"))
    out = ok(tree.doit("gc", "--keep", "1", "--days", "1e300", "--leftover-hours", "1e300")).stdout
    assert "dry run: 0 AMI(s) and 0 leftover(s) would go" in out, out


def test_promoting_a_channel_to_itself_is_refused(tree, aws):
    ok(tree.doit("ami:base"))
    before = tree.objects()
    out = failed(tree.doit("promote", "-i", "base", "-f", "main", "-t", "main"))
    assert "promote: --from and --to are both channel main: nothing to promote" in out, out
    assert tree.objects() == before


def _spot_fleet(aws, ami: str) -> None:
    aws.ec2.request_spot_fleet(SpotFleetRequestConfig={
        "IamFleetRole": "arn:aws:iam::123456789012:role/fleet", "TargetCapacity": 1,
        "Type": "maintain", "AllocationStrategy": "lowestPrice",
        "LaunchSpecifications": [{"ImageId": ami, "InstanceType": "t3.micro"}],
    })


def _spot_request(aws, ami: str) -> None:
    aws.ec2.request_spot_instances(Type="persistent", InstanceCount=1, LaunchSpecification={
        "ImageId": ami, "InstanceType": "t3.micro"})


def _ec2_fleet(aws, ami: str) -> None:
    template = aws.ec2.create_launch_template(LaunchTemplateName="fleet-base", LaunchTemplateData={
        "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
    aws.ec2.create_fleet(Type="maintain", TargetCapacitySpecification={
        "TotalTargetCapacity": 1, "DefaultTargetCapacityType": "on-demand"},
        LaunchTemplateConfigs=[{"LaunchTemplateSpecification": {
            "LaunchTemplateId": template, "Version": "1"}, "Overrides": [{"ImageId": ami}]}])


def _batch(aws, ami: str) -> None:
    """An AWS Batch compute environment at 0 vCPUs: it launches the AMI when
    a job comes, and nothing runs now."""
    client = aws.client("batch")
    iam = aws.client("iam")
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    profile = iam.create_instance_profile(InstanceProfileName="batch")["InstanceProfile"]["Arn"]
    vpc = aws.ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnet = aws.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])[
        "Subnets"][0]["SubnetId"]
    group = aws.ec2.describe_security_groups(Filters=[{"Name": "group-name",
                                                       "Values": ["default"]}])[
        "SecurityGroups"][0]["GroupId"]
    client.create_compute_environment(
        computeEnvironmentName="jobs", type="MANAGED", state="ENABLED", serviceRole=role,
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 4, "desiredvCpus": 0,
                          "instanceTypes": ["t3.micro"], "imageId": ami, "subnets": [subnet],
                          "securityGroupIds": [group], "instanceRole": profile})


@pytest.mark.parametrize("launcher, said", [(_spot_fleet, "Spot Fleet request sfr-"),
                                            (_spot_request, "persistent Spot request sir-"),
                                            (_ec2_fleet, "EC2 Fleet fleet-"),
                                            (_batch, "AWS Batch compute environment jobs")])
def test_an_ami_a_fleet_or_a_spot_request_launches_is_kept(tree, aws, launcher, said):
    """Its instances interrupted (a Spot Fleet in maintain mode lost its AMI
    that way): the fleet or request launches it again."""
    amis = _two_generations(tree)
    launcher(aws, amis["first"])
    live = [i["InstanceId"] for r in aws.ec2.describe_instances()["Reservations"]
            for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    if live:
        aws.ec2.terminate_instances(InstanceIds=live)
    dry = ok(tree.doit("gc", "--keep", "1", "--days", "0")).stdout
    line = next(l for l in dry.splitlines() if l.split()[2:3] == [amis["first"]])
    assert "keep" in line and f"referenced by {said}" in line, dry
    ok(tree.doit("gc", "--keep", "1", "--days", "0", "--apply"))
    assert _exists(aws, amis["first"])
