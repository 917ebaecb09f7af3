"""The commands as doit runs them, in this process on the fakes: task
creators, up-to-date checks, the reporter and exit codes, with no emulator
and no Packer (the same through the real Packer: e2e/)."""

from __future__ import annotations

import re

from tasks.adapters.tools import Ran
from tasks.core.errors import INTERRUPTED, AmiError

from support.project import IMAGES


def test_amis_builds_every_image_once_then_nothing(tree):
    first = tree.doit("amis")
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(tree.packer_builds()) == sorted(IMAGES)
    table = first.stdout[first.stdout.index("image   ami"):]
    assert re.search(r"^web\s+ami-[0-9a-f]+\s+built\s+\d+:\d\d$", table, re.M), table
    again = tree.doit("amis")
    assert again.returncode == 0 and len(tree.packer_builds()) == len(IMAGES)
    assert all(re.search(rf"^{name}\s+ami-\S+\s+up to date", again.stdout, re.M)
               for name in IMAGES), again.stdout


def test_the_sandbox_says_once_a_run_that_tests_run_on_a_stand_in(tree):
    done = tree.doit("amis")
    assert done.stdout.count("sandbox: each image's tests run over SSH against a stand-in on "
                             "this machine (127.0.0.1), not on the instance") == 1, done.stdout


def test_a_failed_image_stops_its_children_not_its_siblings(tree):
    tree.packer.fail["build"] = "UnauthorizedOperation: not allowed"
    tree.packer.fail["base"] = "UnauthorizedOperation: not allowed"
    done = tree.doit("amis")
    assert done.returncode == 1
    assert "ERROR: image base: Packer exited 1: UnauthorizedOperation: not allowed" \
        in done.stderr + done.stdout
    for child in ("web", "worker", "build", "deploy"):
        assert f"[{child}] skipped: base did not build" in done.stdout, done.stdout
    del tree.packer.fail["base"]
    again = tree.doit("amis")                          # build fails; its siblings build
    assert again.returncode == 1
    assert sorted(tree.packer_builds()) == ["base", "deploy", "web", "worker"]
    assert re.search(r"^build\s+-\s+failed", again.stdout, re.M), again.stdout


def test_plan_is_what_amis_then_does(tree):
    before = tree.doit("plan")
    assert before.returncode == 0
    assert all(re.search(rf"^{name}\s+build\s", before.stdout, re.M) for name in IMAGES)
    assert "5 to build; no earlier builds" in before.stdout
    assert tree.packer_builds() == []
    tree.doit("amis")
    after = tree.doit("plan")
    assert "nothing to build" in after.stdout and tree.packer_builds() != []


def test_an_offline_plan_says_whose_local_records_it_read(tree):
    tree.doit("amis")
    offline = tree.doit("plan", env={"AMI_BUCKET": None, "AMI_SANDBOX": None})
    assert "offline (AMI_BUCKET is not set; planned from the local records of channel main in " \
           "s3://memory/): AMI existence" in offline.stdout, offline.stdout


def test_list_names_every_task_by_its_creators_docstring(tree):
    listed = tree.doit("list")
    assert listed.returncode == 0
    for task in ("amis", "plan", "gc", "verify", "revoke", "promote", "pipeline"):
        assert re.search(rf"^{task}\s+\S", listed.stdout, re.M), listed.stdout


def test_gc_is_a_dry_run_unless_asked(tree):
    tree.doit("amis")
    dry = tree.doit("gc", "--keep", "1", "--days", "0")
    assert dry.returncode == 0 and "dry run: 0 AMI(s) and 0 leftover(s) would go" in dry.stdout
    assert not [c for c in tree.ec2.calls if c[0] == "deregister"]


def test_inputs_lists_what_it_found_and_marks_each_refusal(tree):
    tree.write("ansible/web_ami.yaml", (tree.path / "ansible/web_ami.yaml").read_text()
               + "- hosts: all\n  tasks:\n    - copy:\n        src: \"{{ lookup('env', 'HOME') }}/x\"\n"
               "        dest: /x\n")
    done = tree.doit("inputs", "-i", "web")
    assert done.returncode == 3, done.stdout + done.stderr
    assert re.search(r"^web: \d+ inputs \(ansible; template packer/ami", done.stdout, re.M)
    assert re.search(r"^packer/ami/ami\.pkr\.hcl\s+template$", done.stdout, re.M), done.stdout
    assert re.search(r"^web: refused: ansible/web_ami\.yaml.*lookup", done.stdout, re.M)
    assert "inputs: 2 problems of web, each shown above with its fix" in done.stderr


def test_sandbox_stop_runs_whatever_amis_yaml_says(tree):
    tree.write("amis.yaml", "images: [\n")
    assert tree.doit("plan").returncode == 3
    done = tree.doit("sandbox_stop")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no sandbox emulator is running" in done.stdout


def test_a_configuration_error_is_its_one_line_and_nothing_more(tree):
    def no_credentials(operation, key):
        if operation == "check":
            raise AmiError("checking bucket s3://memory: no AWS credentials found: configure "
                           "them (AWS_PROFILE, instance role) or set AMI_SANDBOX=1")
    tree.store.before.append(no_credentials)
    done = tree.doit("amis")
    assert done.returncode == 3
    assert (done.stdout + done.stderr).strip() == (
        "ERROR: checking bucket s3://memory: no AWS credentials found: configure them "
        "(AWS_PROFILE, instance role) or set AMI_SANDBOX=1"), done.stdout + done.stderr


def test_an_interrupted_build_says_interrupted_in_the_table(tree):
    def stopped(given):
        raise AmiError("interrupted: the build was stopped and Packer cleaned up; nothing "
                       "recorded; log: .amis/logs/base.log", code=INTERRUPTED)
    tree.packer.instead["base"] = stopped
    done = tree.doit("amis")
    assert done.returncode == INTERRUPTED
    assert re.search(r"^base\s+-\s+interrupted$", done.stdout, re.M), done.stdout
    assert "failed" not in done.stdout and "exit 0" not in done.stdout + done.stderr


def test_verbose_shows_packers_output_not_doits_task_lines(tree):
    done = tree.doit("amis", "-v")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not re.search(r"^\.  (pull|ami:)", done.stdout + done.stderr, re.M), done.stdout


def test_rebuild_builds_an_up_to_date_image_again_and_what_is_built_on_it(tree):
    assert tree.doit("amis").returncode == 0
    planned = tree.doit("plan", "--rebuild", "base")
    assert re.search(r"^base\s+build\s+\S+\s+\S*\s*asked to build again \(--rebuild\)$",
                     planned.stdout, re.M), planned.stdout
    assert re.search(r"^web\s+build\s.*parent base builds first$", planned.stdout, re.M)
    before = len(tree.packer_builds())
    done = tree.doit("amis", "--rebuild", "web")
    assert done.returncode == 0, done.stdout + done.stderr
    assert tree.packer_builds()[before:] == ["web"]           # once, and nothing else
    assert len(tree.packer_builds()) == before + 1
    assert tree.doit("amis").returncode == 0 and len(tree.packer_builds()) == before + 1
    assert tree.doit("amis", "--rebuild=all").returncode == 0
    assert sorted(tree.packer_builds()[before + 1:]) == sorted(IMAGES)
    wrong = tree.doit("amis", "--rebuild", "wbe")
    assert wrong.returncode == 3
    assert "--rebuild wbe: no such image in amis.yaml: did you mean web?" in wrong.stderr


def test_a_piped_run_says_validation_in_one_line_and_each_step_with_v(tree):
    done = tree.doit("amis", env={"AMI_SKIP_VALIDATE": None})
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^\[web\] validated: packer fmt -check, packer validate, --syntax-check "
                     r"ansible/web_ami\.yaml, ansible-lint \(\d+:\d\d\)$",
                     done.stdout, re.M), done.stdout
    assert "validating:" not in done.stdout
    verbose = tree.doit("amis", "-v", "--rebuild", "web", env={"AMI_SKIP_VALIDATE": None})
    for step in ("packer fmt", "packer validate", "--syntax-check ansible/web_ami.yaml",
                 "ansible-lint"):
        assert re.search(rf"^\[web\] validating: {re.escape(step)} \(\d+:\d\d\)$",
                         verbose.stdout, re.M), verbose.stdout


def test_lint_runs_and_is_named_when_packer_validate_failed(tree):
    from tasks.adapters.tools import Ran
    tree.tools.script["scripted-packer"] = lambda argv, cwd: Ran(
        1 if argv[1] == "validate" else 3 if argv[1] == "fmt" else 0, "",
        "Error: Unsupported argument\n")
    tree.tools.script["ansible-lint"] = Ran(2, "ansible/base_ami.yaml:1: name[play]: All plays "
                                                "should be named.\n")
    done = tree.doit("ami:base", env={"AMI_SKIP_VALIDATE": None})
    assert done.returncode == 3, done.stdout + done.stderr
    shown = done.stdout + done.stderr
    assert "3 problems, fix them all, then run again:" in shown, shown
    assert shown.count("problems, fix them all") == 1, shown        # one list, not nested
    assert re.search(r"^  1\. packer fmt -check: ", shown, re.M), shown
    assert re.search(r"^  2\. packer validate packer/ami failed: Error: Unsupported argument.*"
                     r"stage kept in \.amis/stage/", shown, re.M), shown
    assert "ansible-lint failed: ansible/base_ami.yaml:1: name[play]: All plays should be " \
           "named." in shown


def test_the_collector_is_tuned_for_a_short_run(monkeypatch):
    """dodo.py asks for it: cycles looked for seldom, and not at teardown
    (after doit has closed its database)."""
    import atexit
    import gc
    from pathlib import Path
    from tasks.cli.creators import Creators
    registered: list = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(gc, "set_threshold", lambda *t: registered.append(t))
    Creators.tune_collector()
    assert registered == [(200_000, 30, 30), gc.freeze]
    dodo = (Path(__file__).resolve().parents[3] / "dodo.py").read_text()
    assert "\n_tasks.tune_collector()" in dodo


PACKER_SAYS = """Error: Invalid expression

  on packer/ami/ami.pkr.hcl line 22, in source "amazon-ebs" "ami":
  22:   source_ami      = = var.source_ami

Expected the start of an expression, but found an invalid expression token.
"""


def broken_template(tree) -> None:
    path = tree.path / "packer/ami/ami.pkr.hcl"
    path.write_text(path.read_text().replace("source_ami      = var.source_ami",
                                             "source_ami      = = var.source_ami"))


def test_a_template_this_tool_cannot_read_is_named_once_at_its_line(tree):
    broken_template(tree)
    plan = tree.doit("plan")
    assert plan.returncode != 0
    said = [line for line in (plan.stdout + plan.stderr).splitlines() if "not valid HCL2" in line]
    assert len(said) == 1, said                # five images read it: one problem
    assert re.search(r"packer/ami/ami\.pkr\.hcl:22: not valid HCL2, .*\(column 21, at "
                     r"'= var.source_ami'\): `doit validate`, which hands it to Packer's own "
                     r"parser, says which",
                     said[0]), said


def test_validate_hands_a_template_it_cannot_read_to_packers_own_parser(tree):
    broken_template(tree)
    tree.tools.script["scripted-packer"] = lambda argv, cwd: \
        Ran(1, PACKER_SAYS) if "-syntax-only" in argv else Ran(0)
    done = tree.doit("validate")
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert [a[1:] for a in tree.tools.ran("scripted-packer")] == [
        ["validate", "-syntax-only", "packer/ami"]]
    assert out.count("Expected the start of an expression") == 1      # shown once, for all five
    assert "ERROR: image base: packer validate -syntax-only packer/ami: Error: Invalid " \
           "expression, on packer/ami/ami.pkr.hcl line 22" in out, out
    assert "ERROR: image web: its template, packer/ami, is the one above" in out, out
    tree.tools.script["scripted-packer"] = Ran(0)          # Packer reads it: ours is the limit
    tree.tools.calls.clear()
    done = tree.doit("validate:web")
    assert "ERROR: image web: packer/ami: Packer's parser reads it and this tool's " \
           "(python-hcl2) does not" in done.stdout + done.stderr, done.stdout + done.stderr


def test_validate_of_a_readable_image_in_a_tree_with_problems_names_them_all(tree):
    (tree.path / "ansible/web_ami.yaml").write_text("- hosts: all\n  roles: [no_such_role]\n")
    done = tree.doit("validate:web")
    assert done.returncode != 0 and "no_such_role" in done.stdout + done.stderr
    assert tree.tools.ran("scripted-packer") == []


def test_validate_names_the_trees_other_problems_with_packers_word(tree):
    """One image on a template of its own, with a role that does not exist:
    its problem comes in the same run as Packer's word on the broken one."""
    import shutil
    shutil.copytree(tree.path / "packer/ami", tree.path / "packer/worker")
    broken_template(tree)
    graph = tree.path / "amis.yaml"
    graph.write_text(graph.read_text().replace(
        "  worker:\n    parent: base\n",
        "  worker:\n    parent: base\n    template: packer/worker\n"))
    playbook = tree.path / "ansible/worker_ami.yaml"
    playbook.write_text(playbook.read_text().replace("roles:\n", "roles:\n    - no_such_role\n", 1))
    tree.tools.script["scripted-packer"] = lambda argv, cwd: \
        Ran(1, PACKER_SAYS) if "-syntax-only" in argv else Ran(0)
    done = tree.doit("validate:base")
    out = done.stdout + done.stderr
    assert "ERROR: 2 problems, fix them all, then run again:" in out, out
    assert re.search(r"1\. image base: packer validate -syntax-only packer/ami: Error: Invalid "
                     r"expression, on packer/ami/ami\.pkr\.hcl line 22", out), out
    assert re.search(r"2\. ansible/worker_ami\.yaml:\d+: role 'no_such_role' not found", out), out


def test_validate_leaves_a_template_it_can_read_to_the_trees_refusal(tree):
    """An image left without inputs for another reason than its template's
    syntax (an `only:` naming no source) is not Packer's to judge."""
    graph = tree.path / "amis.yaml"
    graph.write_text(graph.read_text().replace(
        "  worker:\n    parent: base\n",
        "  worker:\n    parent: base\n    only: amazon-ebs.nope\n"))
    done = tree.doit("validate")
    assert done.returncode != 0 and "amazon-ebs.nope" in done.stdout + done.stderr
    assert tree.tools.ran("scripted-packer") == []


def test_the_channel_note_is_said_when_the_pull_fails(tree):
    from tasks.core.errors import AmiError as Failure
    tree.git.dirty = True
    tree.store.before.append(lambda op, key: (_ for _ in ()).throw(Failure("S3 said no"))
                             if op == "listing" else None)
    done = tree.doit("amis")
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "S3 said no" in out, out
    assert "the working tree has uncommitted changes: publishing to channel" in out, out
