"""Faults, through doit in process: no dead, shared or forged AMI published,
a failed write repaired, a lock's release a warning, bad records and bad
input files one line. Failing requests come from the fault-injecting proxy
in front of the emulator (support/faultproxy.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from support.project import BUCKET, REGION, commit, current_ami, failed, ok
from tasks.adapters.packer_output import Result


def test_an_untracked_input_makes_the_tree_dirty(tree, aws):
    tree.env.pop("AMI_ALLOW_DIRTY")
    (tree.path / "ansible/roles/web_app/templates/extra.conf.j2").write_text("new\n")
    result = ok(tree.doit("amis"))
    assert "the working tree has inputs git does not have at HEAD " \
           "(ansible/roles/web_app/templates/extra.conf.j2)" in result.stdout
    objects = aws.objects()
    assert "channels/main/web.json" not in objects
    assert json.loads(objects["channels/dirty/web.json"])["git"]["dirty"] is True


def test_a_failed_id_write_is_repaired_by_the_next_run(tree, aws, proxy):
    ok(tree.doit("amis"))
    (tree.path / "ansible/base_ami.yaml").write_text(
        (tree.path / "ansible/base_ami.yaml").read_text() + "\n# changed\n")
    proxy.fail(lambda r: r.is_s3("PUT", "channels/main/base.txt"))
    out = failed(tree.doit("ami:base", env={"AWS_ENDPOINT_URL": proxy.url}))
    assert "writing s3://test-amis/channels/main/base.txt: InternalError: injected by the " \
           "test proxy: a fault on AWS's side: run again" in out
    objects = aws.objects()
    new = json.loads(objects["channels/main/base.json"])["amis"][REGION]
    assert objects["channels/main/base.txt"].decode().strip() != new      # left behind
    result = ok(tree.doit("amis"))
    assert f"[base] repaired s3://{BUCKET}/channels/main/base.txt: it now says {new}" \
        in result.stdout
    assert aws.objects()["channels/main/base.txt"].decode().strip() == new


def test_an_artifact_this_build_did_not_make_is_refused(tree, aws):
    ok(tree.doit("amis"))
    (tree.path / "ansible/roles/worker_app/defaults/main.yml").write_text("---\nx: 1\n")
    # A Packer (or a wrapper) that names an AMI it did not make: the parent's.
    tree.packer.instead["worker"] = lambda given: Result(
        exit_code=0, amis={REGION: given["source_ami"]})
    base = current_ami(aws, "base")
    before = aws.objects()["channels/main/worker.json"]
    out = failed(tree.doit("ami:worker"))
    assert f"image worker: Packer named eu-west-1:{base}, which this build did not make " \
           "(tags Image='base'" in out
    assert aws.objects()["channels/main/worker.json"] == before


def test_a_lock_release_is_retried_and_a_failed_one_is_a_warning(tree, aws, proxy):
    deletes = proxy.fail(lambda r: r.method == "DELETE" and "/locks/" in r.path, times=3)
    result = ok(tree.doit("ami:base", env={"AWS_ENDPOINT_URL": proxy.url}))
    assert deletes.hits == 3 and "could not release" not in result.stdout
    assert not [k for k in aws.objects() if k.startswith("locks/")]
    proxy.fail(lambda r: r.method == "DELETE" and "/locks/" in r.path)
    (tree.path / "ansible/base_ami.yaml").write_text(
        (tree.path / "ansible/base_ami.yaml").read_text() + "\n# again\n")
    result = ok(tree.doit("ami:base", env={"AWS_ENDPOINT_URL": proxy.url}))
    assert "[base] warning: could not release the lock locks/base/" in result.stdout
    assert "[base] built ami-" in result.stdout


def test_packers_failure_is_the_error_even_when_the_release_fails(tree, proxy):
    tree.packer.fail["base"] = "UnauthorizedOperation: not allowed"
    proxy.fail(lambda r: r.method == "DELETE" and "/locks/" in r.path)
    out = failed(tree.doit("ami:base", env={"AWS_ENDPOINT_URL": proxy.url}))
    assert "image base: Packer exited 1: UnauthorizedOperation: not allowed" in out


def test_a_fifo_among_the_inputs_is_one_line_not_a_hang(tree):
    os.mkfifo(tree.path / "ansible/roles/web_app/files-pipe")
    for task in ("plan", "amis"):
        done = tree.doit(task, timeout=60)
        out = failed(done)
        assert "ansible/roles/web_app/files-pipe: not a regular file (a FIFO, socket or " \
               "device): inputs must be regular files: remove it" in out


@pytest.mark.parametrize("field, value", [("build_finished", 12345), ("parent", "base"),
                                          ("inputs", ["x"]), ("git", "main")])
def test_a_record_with_a_wrong_type_is_one_line(tree, aws, field, value):
    ok(tree.doit("amis"))
    record = json.loads(aws.objects()["channels/main/web.json"])
    record[field] = value
    body = json.dumps(record).encode()
    aws.s3.put_object(Bucket=BUCKET, Key="channels/main/web.json", Body=body)
    aws.s3.put_object(Bucket=BUCKET, Key=f"digests/web/{record['digest']}.json", Body=body)
    for args in (("amis",), ("plan",), ("explain", "-a", record["amis"][REGION])):
        out = failed(tree.doit(*args))
        assert re.search(rf"s3://{BUCKET}/(channels/main|digests/web)/\S+\.json: key "
                         rf"'{field}' ", out), (args, out)


def test_a_read_only_records_folder_is_one_line(tree):
    records = tree.path / ".amis/records"
    records.mkdir(parents=True)
    subprocess.run(["chattr", "+i", str(records)], check=True)
    try:
        out = failed(tree.doit("amis"))
    finally:
        subprocess.run(["chattr", "-i", str(records)], check=True)
    assert re.search(r"\.amis/records: cannot write \(Operation not permitted\)", out), out


def test_the_state_folder_deleted_mid_run_is_survived(tree):
    """`rm -rf .amis` in another terminal while base builds: base fails (its
    stage is gone), nothing else breaks, and the next run builds."""
    def wipe(_given):
        shutil.rmtree(tree.path / ".amis")
        return Result(exit_code=1, errors=["open template: no such file or directory"])
    tree.packer.instead["base"] = wipe
    out = failed(tree.doit("amis"))
    assert "image base: Packer exited 1: open template: no such file or directory" in out
    del tree.packer.instead["base"]
    ok(tree.doit("amis"))


def test_promote_all_checks_every_image_before_moving_any(tree, aws):
    ok(tree.doit("amis"))
    subprocess.run(["git", "checkout", "-q", "-b", "partial"], cwd=tree.path, check=True)
    (tree.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n[]\n")
    commit(tree.path)
    ok(tree.doit("ami:web"))                     # the channel has centos, base, web only
    before = {k: v for k, v in aws.objects().items() if k.startswith("channels/main/")}
    out = failed(tree.doit("promote", "-i", "all", "-f", "partial", "-t", "main"))
    assert "channel partial has no record of build" in out
    assert {k: v for k, v in aws.objects().items() if k.startswith("channels/main/")} == before


def test_two_promotions_in_one_second_keep_two_notes(tree, aws):
    ok(tree.doit("amis"))
    for target in ("staging", "canary"):        # the same image's notes, likely one second
        ok(tree.doit("promote", "-i", "web", "-f", "main", "-t", target))
    assert len([k for k in aws.objects() if k.startswith("promotions/web/")]) == 2
    again = ok(tree.doit("promote", "-i", "web", "-f", "main", "-t", "canary"))
    assert "channel canary: already at" in again.stdout       # nothing moved: no note
    assert len([k for k in aws.objects() if k.startswith("promotions/web/")]) == 2


def test_an_oversized_record_is_refused(tree, aws):
    ok(tree.doit("amis"))
    record = json.loads(aws.objects()["channels/main/web.json"])
    record["inputs"] = {f"f{i:07d}": "0" * 64 for i in range(70_000)}    # about 5 MB
    aws.s3.put_object(Bucket=BUCKET, Key="channels/main/web.json", Body=json.dumps(record))
    out = failed(tree.doit("amis"))
    assert re.search(r"s3://test-amis/channels/main/web.json: \d+ bytes, more than a record "
                     r"may hold \(4194304\)", out), out


def test_a_multi_line_packer_error_shows_its_detail(tree):
    tree.packer.fail["base"] = "1 error(s) occurred:\n\n* ami_regions: invalid region xx-fake-1"
    out = failed(tree.doit("ami:base"))
    assert "image base: Packer exited 1: ami_regions: invalid region xx-fake-1" in out


def test_a_no_op_lists_the_channel_and_fetches_nothing(tree, aws, proxy):
    """A warm no-op: two listings (the bucket check, which lists the
    revocations, and the channel), no GET however many images; a fresh
    clone GETs each record once, nothing else."""
    ok(tree.doit("amis"))
    s3 = lambda method, get_object: lambda r: (                     # noqa: E731
        r.method == method and r.path.startswith(f"/{BUCKET}")
        and (r.path.count("/") > 1) == get_object)
    via = {"AWS_ENDPOINT_URL": proxy.url}
    ok(tree.doit("amis", env=via))
    assert proxy.count(s3("GET", True)) == 0
    assert proxy.count(s3("GET", False)) == 2   # the bucket check (of revocations/), the channel
    # one per region the records name (web is copied to us-east-1): every copy is checked
    assert proxy.count(lambda r: r.action == "DescribeImages") == 2
    proxy.seen.clear()
    tree.reset_count()
    clone = tree.clone(tree.path.parent / "fresh")
    ok(clone.doit("amis", env=via))
    assert proxy.count(s3("GET", True)) == 6            # centos and five images, once each
    assert proxy.count(s3("GET", False)) == 2
    assert clone.packer_builds() == []


def _amis_tagged(aws, image: str) -> set[str]:
    images = aws.ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "tag:Image", "Values": [image]}])["Images"]
    return {i["ImageId"] for i in images}


def test_a_build_that_made_several_amis_publishes_none_and_removes_them(tree, aws):
    ok(tree.doit("amis"))
    before = _amis_tagged(aws, "worker")
    (tree.path / "ansible/roles/worker_app/defaults/main.yml").write_text("---\nx: 2\n")
    tree.packer.sources["worker"] = 2          # a template whose build has two sources
    out = failed(tree.doit("ami:worker"))
    assert "image worker: Packer ran 2 builds (amazon-ebs, amazon-ebs.s1), each making an AMI, " \
           "and an image records one: name its source with only: in amis.yaml" in out
    assert "deregistered what the failed build made: eu-west-1:ami-" in out
    assert _amis_tagged(aws, "worker") == before
    assert current_ami(aws, "worker") in before


def test_what_a_failed_build_made_is_removed_so_a_retry_starts_clean(tree, aws):
    ok(tree.doit("amis"))
    before = _amis_tagged(aws, "web")
    (tree.path / "ansible/roles/web_app/defaults/main.yml").write_text("---\nx: 3\n")
    tree.packer.fail_after["web"] = "Build 'amazon-ebs.arm' errored: copying failed"
    out = failed(tree.doit("ami:web"))
    assert "image web: Packer exited 1: Build 'amazon-ebs.arm' errored" in out
    assert "deregistered what the failed build made" in out
    assert _amis_tagged(aws, "web") == before
    del tree.packer.fail_after["web"]
    ok(tree.doit("ami:web"))
    assert len(_amis_tagged(aws, "web") - before) == 1


def test_a_digest_record_naming_an_ami_this_project_did_not_build_is_not_reused(tree, aws):
    ok(tree.doit("amis"))
    role = tree.path / "ansible/roles/web_app/defaults/main.yml"
    original = role.read_text()
    role.write_text(original + "\nextra: 1\n")
    commit(tree.path)
    ok(tree.doit("amis"))
    edited = json.loads(aws.objects()["channels/main/web.json"])
    role.write_text(original)                 # a revert: reuse by digest, if the record is true
    commit(tree.path)
    before = json.loads(aws.objects()["channels/main/base.json"])
    digest = tree.digest("web")
    key = f"digests/web/{digest}.json"
    forged = json.loads(aws.objects()[key])
    public = aws.ec2.register_image(Name="someone-elses", RootDeviceName="/dev/sda1")["ImageId"]
    forged["amis"] = {REGION: public}        # rewritten to name an AMI without our tags
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(forged).encode())
    tree.reset_count()
    plan = ok(tree.doit("plan")).stdout
    assert f"not reusing the earlier build of these inputs: AMI {public} (eu-west-1) is not " \
           "what the record says (tags ManagedBy=None, Image=None, Digest=None)" in plan, plan
    ok(tree.doit("amis"))
    assert tree.packer_builds() == ["web"]
    assert current_ami(aws, "web") not in (public, edited["amis"][REGION])
    assert json.loads(aws.objects()["channels/main/base.json"]) == before


def test_a_copy_deregistered_out_of_band_is_rebuilt(tree, aws):
    ok(tree.doit("amis"))
    copy = json.loads(aws.objects()["channels/main/web.json"])["amis"]["us-east-1"]
    tree.client("ec2", "us-east-1").deregister_image(ImageId=copy)
    tree.reset_count()
    out = ok(tree.doit("amis")).stdout
    assert f"[web] build: AMI {copy} (us-east-1) no longer exists" in out
    assert out.count("no longer exists") == 1, out              # said once, when it builds
    assert tree.packer_builds() == ["web"]


def test_a_mode_only_commit_rebuilds_the_images_that_read_the_file(tree, aws):
    ok(tree.doit("amis"))
    script = tree.path / "ansible/roles/web_app/defaults/main.yml"
    script.chmod(0o755)                       # what decides whether a script runs
    commit(tree.path)
    tree.reset_count()
    plan = ok(tree.doit("plan")).stdout
    assert re.search(r"^web\s+build.*changed ansible/roles/web_app/defaults/main.yml",
                     plan, re.M), plan
    ok(tree.doit("amis"))
    assert tree.packer_builds() == ["web"]
    entry = json.loads(aws.objects()["channels/main/web.json"])["inputs"][
        "ansible/roles/web_app/defaults/main.yml"]
    assert entry.endswith("+x") and len(entry) == 66


def test_plan_names_what_this_packer_cannot_run_before_any_build(tree):
    template = tree.path / "packer/ami/ami.pkr.hcl"
    text = template.read_text()
    template.write_text(text.replace("  source_ami      = var.source_ami\n",
                                     "  source_ami      = var.source_ami\n"
                                     "  metadata_options {\n    http_tokens = \"required\"\n  }\n"))
    line = next(n for n, t in enumerate(template.read_text().splitlines(), 1)
                if "metadata_options" in t)
    for command, images in (("plan", "images base, build, deploy, web, worker"),
                            ("amis", "image base")):
        out = failed(tree.doit(command))
        assert f"{images}: packer/ami/ami.pkr.hcl:{line}: amazon-ebs metadata_options needs " \
               "Packer 1.7 or newer; found 1.6.6: upgrade Packer, or remove it (the runner " \
               "requires IMDSv2 on the build instance and on the AMI itself)" in out, out
    assert tree.packer_builds() == []


def test_a_sensitive_variable_from_amis_yaml_is_kept_as_a_hash_and_never_on_argv(tree, aws):
    (tree.path / "packer/ami/secret.pkr.hcl").write_text(
        'variable "api_key" {\n  type      = string\n  default   = ""\n  sensitive = true\n}\n')
    graph = tree.path / "amis.yaml"
    graph.write_text(graph.read_text().replace("  base:\n", "  base:\n    vars: {api_key: s3cr3t-v4lue}\n", 1))
    commit(tree.path)
    ok(tree.doit("amis"))
    build = next(b for b in tree.packer.builds if b.image == "base")
    assert build.variables["api_key"] == "s3cr3t-v4lue"          # Packer gets it, from a file
    assert not any("s3cr3t" in a for a in build.argv)
    record = json.loads(aws.objects()["channels/main/base.json"])
    assert record["settings"]["vars"]["api_key"].startswith("sha256:")
    assert not [k for k, v in aws.objects().items() if b"s3cr3t" in v]


def test_a_build_whose_record_cannot_be_kept_removes_its_ami(tree, aws, proxy):
    """Without its digest record no run would ever reuse the AMI: it would
    stay, signed and tagged, and the next run would build again."""
    ok(tree.doit("amis"))
    before = _amis_tagged(aws, "web")
    (tree.path / "ansible/roles/web_app/defaults/main.yml").write_text("---\nx: 4\n")
    proxy.fail(lambda r: r.method == "PUT" and "/digests/web/" in r.path)
    out = failed(tree.doit("ami:web", env={"AWS_ENDPOINT_URL": proxy.url}))
    assert re.search(r"image web: its record could not be kept \(writing s3://test-amis/"
                     r"digests/web/\w+\.json: InternalError: injected by the test proxy: a fault "
                     r"on AWS's side: run again\); nothing published", out), out
    assert "deregistered what the failed build made: eu-west-1:ami-" in out
    assert _amis_tagged(aws, "web") == before
