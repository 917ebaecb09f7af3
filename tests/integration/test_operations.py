"""Operations in process, through doit: channels per branch, dirty trees,
promotion, SSM, offline plans, max age, the graph, explain, Buildkite
annotations and pipelines, gc."""

from __future__ import annotations

import json
import re

from support.inproc import next_second
from support.project import BUCKET, REGION, ok, plan_rows

BUILD_URL = "https://buildkite.com/acme/amis/builds/42"


def _branch(project, name):
    import subprocess
    subprocess.run(["git", "checkout", "-q", "-b", name], cwd=project.path, check=True)


def _commit(project, message="change"):
    import subprocess
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(git + ["commit", "-qam", message], cwd=project.path, check=True)


def _fake_agent(tmp_path):
    from support.project import write_script
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "agent-calls"
    write_script(bin_dir / "buildkite-agent", f"""#!/bin/sh
echo "ARGS $*" >> "{calls}"
cat >> "{calls}"
""")
    return bin_dir, calls


def _all_amis(aws):
    out = set()
    for region in ("eu-west-1", "us-east-1"):
        import boto3
        ec2 = boto3.client("ec2", endpoint_url=aws.url, region_name=region,
                           aws_access_key_id="test", aws_secret_access_key="test")
        out |= {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    return out


def _schema_check(*paths):
    import subprocess
    import sys
    from pathlib import Path
    exe = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run([str(exe), "--builtin-schema", "vendor.buildkite", *map(str, paths)],
                          capture_output=True, text=True)


def test_a_branch_publishes_to_its_own_channel_and_reuses_mains_amis(tree, aws):
    ok(tree.doit("amis"))
    main_before = {k: v for k, v in aws.objects().items() if k.startswith("channels/main/")}
    tree.reset_count()
    _branch(tree, "feature/Faster-Boot")
    result = ok(tree.doit("amis"))
    assert "pulled channel feature-faster-boot-bf604419" in result.stdout
    assert tree.packer_builds() == []                       # digests shared with main
    objects = aws.objects()
    for image in ("base", "web"):
        assert json.loads(objects[f"channels/feature-faster-boot-bf604419/{image}.json"]) == \
            json.loads(main_before[f"channels/main/{image}.json"])
    (tree.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n[]\n")
    _commit(tree)
    ok(tree.doit("amis"))
    assert tree.packer_builds() == ["web"]
    objects = aws.objects()
    assert {k: v for k, v in objects.items() if k.startswith("channels/main/")} == main_before
    branch_web = json.loads(objects["channels/feature-faster-boot-bf604419/web.json"])
    assert branch_web["amis"] != json.loads(main_before["channels/main/web.json"])["amis"]


def test_a_dirty_tree_never_moves_main(tree, aws):
    ok(tree.doit("amis"))
    main_before = {k: v for k, v in aws.objects().items() if k.startswith("channels/main/")}
    (tree.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n[]\n")
    result = ok(tree.doit("amis", env={"AMI_ALLOW_DIRTY": None}))
    assert "uncommitted changes: publishing to channel 'dirty', not 'main'" in result.stdout
    objects = aws.objects()
    assert {k: v for k, v in objects.items() if k.startswith("channels/main/")} == main_before
    assert "channels/dirty/web.json" in objects
    forced = ok(tree.doit("amis", env={"AMI_ALLOW_DIRTY": "1"}))
    assert "pulled channel main" in forced.stdout
    assert aws.objects()["channels/main/web.json"] == objects["channels/dirty/web.json"]


def test_promote_moves_a_channel_and_records_who_and_what(tree, aws):
    ok(tree.doit("amis"))
    old_main = json.loads(aws.objects()["channels/main/web.json"])
    _branch(tree, "candidate")
    (tree.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n[]\n")
    _commit(tree)
    ok(tree.doit("amis"))
    candidate = json.loads(aws.objects()["channels/candidate/web.json"])
    result = ok(tree.doit("promote", "-i", "web", "-f", "candidate", "-t", "main",
                             env={"AMI_ACTOR": "alice@example.com"}))
    assert (f"[web] channel main: {old_main['amis'][REGION]} -> {candidate['amis'][REGION]} "
            "(from candidate, by alice@example.com)") in result.stdout
    objects = aws.objects()
    promoted = json.loads(objects["channels/main/web.json"])
    assert promoted.pop("promotion")["from_channel"] == "candidate"
    assert promoted == candidate
    assert objects["channels/main/web.txt"].decode().strip() == candidate["amis"][REGION]
    notes = [json.loads(v) for k, v in objects.items() if k.startswith("promotions/web/")]
    assert len(notes) == 1
    assert {k: notes[0][k] for k in ("from_channel", "to_channel", "ami", "replaced_ami", "by")} \
        == {"from_channel": "candidate", "to_channel": "main", "ami": candidate["amis"][REGION],
            "replaced_ami": old_main["amis"][REGION], "by": "alice@example.com"}


def test_promote_from_an_empty_channel_is_one_line(tree):
    from support.project import failed
    ok(tree.doit("amis"))
    out = failed(tree.doit("promote", "-i", "web", "-f", "nowhere"))
    assert "channel nowhere has no record of web: build it there first; channels holding " \
           "web: main" in out, out
    out = failed(tree.doit("promote", "-i", "web", "-f", "mian", "-t", "staging"))
    assert "channel mian has no record of web: did you mean main? channels holding web: main" \
        in out, out
    out = failed(tree.doit("promote", "-i", "nope", "-f", "main"))
    assert "promote --image='nope': no such image" in out
    out = failed(tree.doit("promote", "-i", "wbe", "-f", "main"))
    assert "promote --image='wbe': no such image in amis.yaml: did you mean web?" in out


def test_channel_ids_go_to_ssm_when_asked(tree, aws):
    import boto3
    ok(tree.doit("amis", env={"AMI_SSM_PREFIX": "/amis"}))
    ssm = boto3.client("ssm", endpoint_url=aws.url, region_name=REGION,
                       aws_access_key_id="test", aws_secret_access_key="test")
    web = json.loads(tree.record("web").read_text())
    param = ssm.get_parameter(Name="/amis/main/web")["Parameter"]
    assert param["Value"] == web["amis"][REGION]
    assert param.get("DataType") == "aws:ec2:image"


def test_plan_works_offline_from_local_records_and_says_so(tree):
    ok(tree.doit("amis"))
    result = ok(tree.doit("plan", env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}))
    assert "offline (" in result.stdout and "cannot reach" in result.stdout
    rows = plan_rows(result.stdout)
    assert all("up to date" in rows[i] for i in ("base", "web", "worker", "build", "deploy"))


def test_an_image_older_than_its_max_age_is_rebuilt(tree, aws):
    import re
    graph = tree.path / "amis.yaml"
    graph.write_text(graph.read_text().replace("  worker:\n    parent: base\n",
                                               "  worker:\n    parent: base\n    max_age_days: 30\n"))
    ok(tree.doit("amis"))
    tree.reset_count()
    record = json.loads(aws.objects()["channels/main/worker.json"])
    record["build_started"] = record["build_finished"] = "2026-01-01T00:00:00+00:00"
    body = json.dumps(record).encode()
    for key in ("channels/main/worker.json", f"digests/worker/{record['digest']}.json"):
        aws.s3.put_object(Bucket="test-amis", Key=key, Body=body)
    plan = ok(tree.doit("plan"))
    assert re.search(r"^worker\s+build.*older than 30 days", plan.stdout, re.M), plan.stdout
    result = ok(tree.doit("amis"))
    assert tree.packer_builds() == ["worker"]
    assert re.search(r"\[worker\] older than 30 days \(\d+\): rebuilding for OS updates",
                     result.stdout), result.stdout


def test_graph_as_mermaid_and_dot_coloured_by_status(tree):
    ok(tree.doit("amis"))
    (tree.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n[]\n")
    mermaid = ok(tree.doit("graph")).stdout
    assert mermaid.startswith("graph TD\n")
    ids = dict(re.findall(r'^  (n\d+)\["(\w+)<br/>', mermaid, re.M))
    edges = {(ids[a], ids[b]) for a, b in re.findall(r"^  (n\d+) --> (n\d+)$", mermaid, re.M)}
    assert edges == {("centos", "base"), ("base", "web"), ("base", "worker"),
                     ("base", "build"), ("base", "deploy")}
    assert ':::build' in next(l for l in mermaid.splitlines() if '["web<br/>' in l)
    assert ':::uptodate' in next(l for l in mermaid.splitlines() if '["worker<br/>' in l)
    assert "classDef build fill:#fff3cd" in mermaid
    dot = ok(tree.doit("graph", "--format", "dot")).stdout
    assert "digraph amis {" in dot and '"base" -> "web";' in dot
    assert re.search(r'"web" \[label="web\\nami-\w+\\nbuild", fillcolor="#fff3cd"', dot)


def test_explain_follows_an_ami_back_to_the_source(tree, tmp_path):
    ok(tree.doit("amis"))
    web = json.loads(tree.record("web").read_text())
    base = json.loads(tree.record("base").read_text())
    clone = tree.clone(tmp_path / "elsewhere")            # no local records: from S3
    result = ok(clone.doit("explain", "-a", web["amis"]["us-east-1"]))
    lines = [l for l in result.stdout.splitlines() if "ami-" in l]
    assert lines[0].startswith(f"{web['amis']['us-east-1']}  web: built ")
    assert web["digest"][:12] in lines[0]
    assert f"└ {base['amis'][REGION]}  base: built" in lines[1]
    assert "└ ami-bb9a6bc2  centos: source image (pinned)" in lines[2]
    from support.project import failed
    assert "ami-12345678: no record of this project built it" in failed(
        clone.doit("explain", "-a", "ami-12345678"))


def test_under_buildkite_the_run_is_annotated(tree, tmp_path):
    import os
    bin_dir, calls = _fake_agent(tmp_path)
    env = {"BUILDKITE": "true", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    ok(tree.doit("amis", env=env))
    text = calls.read_text()
    assert text.startswith("ARGS annotate --style success --context amis")
    web = json.loads(tree.record("web").read_text())
    assert re.search(rf"\| web \| built \| `{web['amis'][REGION]}` \| \d+s \|", text)
    assert "```mermaid" in text and "n1 --> n4" in text and 'n4["web<br/>' in text


def test_a_failed_run_is_annotated_as_an_error(tree, tmp_path):
    import os
    bin_dir, calls = _fake_agent(tmp_path)
    tree.packer.fail["base"] = "UnauthorizedOperation: no"
    env = {"BUILDKITE": "true", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    assert tree.doit("amis", env=env).returncode != 0
    ok(tree.doit("annotate", env=env))
    text = calls.read_text()
    assert "ARGS annotate --style error --context amis" in text
    assert re.search(r"\| base \| failed \| `-` \| \d+s \| image base: Packer exited 1", text)


def test_the_dynamic_pipeline_follows_the_plan(tree):
    import yaml
    ok(tree.doit("amis"))

    def steps(env=None):
        ok(tree.doit("pipeline", env=env))
        return yaml.safe_load((tree.path / ".amis/pipeline.yml").read_text())

    nothing = steps()["steps"]
    assert len(nothing) == 1 and "up to date" in nothing[0]["label"]
    (tree.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n[]\n")
    only_web = steps({"AMI_PACKER_RETRIES": "3"})
    assert [s["key"] for s in only_web["steps"]] == ["ami-web"]
    assert "depends_on" not in only_web["steps"][0]
    assert only_web["env"] == {"AMI_BUCKET": "test-amis", "AMI_PACKER_RETRIES": "3"}
    (tree.path / "ansible/base_ami.yaml").write_text(
        (tree.path / "ansible/base_ami.yaml").read_text() + "\n")
    plan = ok(tree.doit("plan")).stdout
    stale = sorted(re.findall(r"^(\w+)\s+build", plan, re.M))
    pipeline = steps()["steps"]
    assert sorted(s["key"] for s in pipeline) == [f"ami-{i}" for i in stale]
    edges = {(s.get("depends_on"), s["key"]) for s in pipeline}
    assert edges == {(None, "ami-base")} | {("ami-base", f"ami-{c}")
                                           for c in ("build", "deploy", "web", "worker")}
    for step in pipeline:
        assert step["command"] == f"./doit ami:{step['key'][4:]}"
        assert step["retry"]["automatic"][0] == {"exit_status": -1, "limit": 2}


def test_gc_keeps_what_is_used_and_deletes_only_with_apply(tree, aws):
    ok(tree.doit("amis"))
    first = {i: json.loads(tree.record(i).read_text()) for i in
             ("base", "web", "worker", "build", "deploy")}
    aws.ec2.create_launch_template(LaunchTemplateName="web-prod", LaunchTemplateData={
        "ImageId": first["web"]["amis"][REGION]})
    aws.ec2.run_instances(ImageId=first["deploy"]["amis"][REGION], MinCount=1, MaxCount=1)
    aws.ec2.modify_image_attribute(ImageId=first["build"]["amis"][REGION],
                                   LaunchPermission={"Add": [{"UserId": "111122223333"}]})
    (tree.path / "ansible/base_ami.yaml").write_text(
        (tree.path / "ansible/base_ami.yaml").read_text() + "\n")
    next_second()                         # the emulator dates AMIs to the second
    ok(tree.doit("amis"))                                     # a second generation
    before = _all_amis(aws)
    dry = ok(tree.doit("gc", "--keep", "1", "--days", "0")).stdout
    assert _all_amis(aws) == before                              # dry run deletes nothing
    row = {l.split()[2]: l for l in dry.splitlines() if re.match(r"^\w+\s+[a-z]{2}-", l)}
    old = lambda image: first[image]["amis"][REGION]             # noqa: E731
    assert "would delete" in row[old("worker")]
    assert "keep" in row[old("web")] and "launch template web-prod" in row[old("web")]
    assert "keep" in row[old("base")]
    kept_children = re.search(r"parent of kept ([^;]+)", row[old("base")]).group(1).split(", ")
    assert old("web") in kept_children and old("deploy") in kept_children
    assert "used by instance" in row[old("deploy")]
    assert "shared with 111122223333" in row[old("build")]
    current = json.loads(tree.record("worker").read_text())["amis"][REGION]
    assert "current in channel main" in row[current]
    snapshots = aws.ec2.describe_images(ImageIds=[old("worker")])["Images"][0]["BlockDeviceMappings"]
    applied = ok(tree.doit("gc", "--keep", "1", "--days", "0", "--apply")).stdout
    assert "deleted" in applied
    after = _all_amis(aws)
    assert old("worker") not in after
    assert {old("web"), old("base"), old("deploy"), old("build"), current} <= after
    snap = snapshots[0]["Ebs"]["SnapshotId"]
    assert snap not in {s["SnapshotId"] for s in aws.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def test_gc_is_bounded_and_young_amis_survive(tree, aws):
    ok(tree.doit("amis"))
    (tree.path / "ansible/base_ami.yaml").write_text(
        (tree.path / "ansible/base_ami.yaml").read_text() + "\n")
    next_second()
    ok(tree.doit("amis"))
    young = ok(tree.doit("gc", "--keep", "1", "--apply")).stdout      # default 14 days
    assert "younger than 14 days" in young and not re.search(r"  deleted  ", young)
    assert young.strip().splitlines()[-1].startswith("deleted 0 AMI(s) and 0 snapshot(s)")
    before = _all_amis(aws)
    ok(tree.doit("gc", "--keep", "1", "--days", "0", "--max", "2", "--apply"))
    assert len(before - _all_amis(aws)) == 2


def test_gc_removes_packer_leftovers(tree, aws):
    ok(tree.doit("amis"))
    aws.ec2.create_key_pair(KeyName="packer_5f0c-left-behind")
    aws.ec2.create_security_group(GroupName="packer_5f0c-left-behind", Description="x")
    dry = ok(tree.doit("gc", "--leftover-hours", "0")).stdout
    assert "would remove leftover: eu-west-1: key pair packer_5f0c-left-behind" in dry
    assert "security group packer_5f0c-left-behind" in dry
    ok(tree.doit("gc", "--leftover-hours", "0", "--apply"))
    assert not [k for k in aws.ec2.describe_key_pairs()["KeyPairs"]
                if k["KeyName"].startswith("packer_")]
    assert not [g for g in aws.ec2.describe_security_groups()["SecurityGroups"]
                if g["GroupName"].startswith("packer_")]


def test_pipelines_are_valid_buildkite_and_steps_run_where_they_are_sent(tree, tmp_path):
    from support.project import ROOT
    import yaml
    done = _schema_check(*sorted((ROOT / ".buildkite").glob("*.yml")))
    assert done.returncode == 0, done.stdout + done.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text("steps:\n  - command: true\n    concurrency: many\n")
    assert _schema_check(bad).returncode != 0                   # the check can fail
    buildkite = {"BUILDKITE_AGENT_META_DATA_QUEUE": "amis-builders",
                 "BUILDKITE_PIPELINE_SLUG": "amis-prod"}
    ok(tree.doit("pipeline", env=buildkite))                 # nothing built: every image
    generated = tree.path / ".amis/pipeline.yml"
    done = _schema_check(generated)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = yaml.safe_load(generated.read_text())["steps"]
    assert len(steps) == 5
    for step in steps:
        assert step["agents"] == {"queue": "amis-builders"}
        assert step["concurrency_group"] == f"amis-prod/amis/{step['key'][4:]}"
    ok(tree.doit("amis"))
    ok(tree.doit("pipeline", env=buildkite))
    nothing = yaml.safe_load(generated.read_text())["steps"]
    assert nothing[0]["agents"] == {"queue": "amis-builders"} and len(nothing) == 1
    assert _schema_check(generated).returncode == 0


def test_promote_takes_a_branch_name_and_says_which_channel_it_is(tree, aws):
    ok(tree.doit("amis"))
    _branch(tree, "feature/Faster-Boot")
    (tree.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n[]\n")
    _commit(tree)
    ok(tree.doit("amis"))
    branch_web = json.loads(aws.objects()["channels/feature-faster-boot-bf604419/web.json"])
    out = ok(tree.doit("promote", "-i", "web", "-f", "feature/Faster-Boot", "-t", "main")).stdout
    assert "promote --from feature/Faster-Boot: branch feature/Faster-Boot publishes to " \
           "channel feature-faster-boot-bf604419" in out
    assert json.loads(aws.objects()["channels/main/web.json"])["amis"] == branch_web["amis"]


def _channel(tree, channel: str) -> dict[str, tuple]:
    """Image -> (AMIs, digest) of every record current in ``channel``, and its ids."""
    objects = tree.objects()
    prefix = f"channels/{channel}/"
    out = {}
    for key, body in objects.items():
        if key.startswith(prefix) and key.endswith(".json"):
            record = json.loads(body)
            image = key[len(prefix):-len(".json")]
            out[image] = (record["amis"], record["digest"],
                          objects[f"{prefix}{image}.txt"].decode().strip())
    return out


def _run_pipeline(tree) -> list[str]:
    """`doit pipeline`, then each step's `doit ami:<name>`, as Buildkite runs them."""
    import yaml
    ok(tree.doit("pipeline"))
    steps = yaml.safe_load((tree.path / ".amis/pipeline.yml").read_text())["steps"]
    keys = [s["key"][len("ami-"):] for s in steps if "key" in s]
    for name in keys:
        ok(tree.doit(f"ami:{name}"))
    return keys


def test_the_pipeline_leaves_a_branchs_channel_exactly_as_amis_does(tree, aws):
    import subprocess
    ok(tree.doit("amis"))
    for branch, change in (("feature/web-only", True), ("feature/nothing", False)):
        subprocess.run(["git", "checkout", "-q", "main"], cwd=tree.path, check=True)
        _branch(tree, branch)
        if change:
            tree.append("ansible/roles/web_app/defaults/main.yml", "\nweb_pipeline: 1\n")
            _commit(tree, "web only")
        tree.reset_count()
        keys = _run_pipeline(tree)
        assert keys == (["web"] if change else []) and tree.packer_builds() == keys
        channel = re.search(r"channel (\S+)", ok(tree.doit("plan")).stdout).group(1)
        after_pipeline = _channel(tree, channel)
        assert sorted(after_pipeline) == sorted(["centos", "base", "web", "worker", "build",
                                                 "deploy"]), after_pipeline
        for key in [k for k in tree.objects() if k.startswith(f"channels/{channel}/")]:
            aws.s3.delete_object(Bucket=BUCKET, Key=key)
        ok(tree.doit("amis"))
        assert _channel(tree, channel) == after_pipeline
        assert tree.packer_builds() == keys                # amis reused the pipeline's build
