"""Every file a build reads is an input of exactly the images that read it;
what cannot be tracked is refused with one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from support import shapes
from tasks.core.errors import AmiError
from tasks.core.graph import load_graph
from tasks.inputs.image import image_inputs


def inputs_of(root: Path) -> dict[str, dict[str, str]]:
    graph = load_graph(root)
    return {name: image_inputs(graph, image).files for name, image in graph.images.items()}


def refusal(root: Path, image: str) -> str:
    graph = load_graph(root)
    with pytest.raises(AmiError) as info:
        image_inputs(graph, graph.images[image])
    assert all("\n" not in p for p in info.value.problems)
    return "\n".join(info.value.problems)


@pytest.fixture
def zoo(tmp_path) -> Path:
    return shapes.zoo(tmp_path)


def test_each_file_is_an_input_of_exactly_the_images_that_read_it(zoo):
    found = inputs_of(zoo)
    for path, readers in shapes.READERS.items():
        assert [n for n in found if path in found[n]] == readers, path
    for path in shapes.UNREAD:
        assert not [n for n in found if path in found[n]], path


def test_reasons_name_the_reference(zoo):
    found = inputs_of(zoo)
    assert found["shell"]["packer/linux/scripts/install-arm64.sh"] == \
        "packer/linux/buildkite-ami.json provisioner 2 (shell) scripts"
    assert found["shell"]["packer/linux/conf/systemd/agent.service"] == \
        "packer/linux/buildkite-ami.json provisioner 3 (file) source"
    assert found["shell"]["packer/linux/vars.json"] == "var file (amis.yaml)"
    assert found["app"]["ansible/extra.yml"] == \
        "packer/app.json provisioner 1 (ansible) extra_arguments --extra-vars"
    assert found["app"]["ansible/requirements.yml"].startswith("packer/app.json provisioner 1")
    assert found["app"]["ansible.cfg"] == "ansible.cfg"
    assert found["app"]["ansible/shared-roles/hardening/tasks/main.yml"] == \
        "role hardening (named in ansible/app.yml)"


def test_a_full_collection_name_never_means_a_local_role(zoo):
    app = inputs_of(zoo)["app"]
    assert "ansible/roles/docker/tasks/main.yml" not in app
    assert "ansible/collections/ansible_collections/acme/platform/galaxy.yml" in app


def test_of_a_vendored_collection_only_what_a_play_uses_is_an_input(zoo):
    # Companies House's shape: a vendored collection of many roles, with docs
    # and test playbooks of its own, of which a play uses one role
    coll = "ansible/collections/ansible_collections/acme/platform"
    shapes.write(zoo, {f"{coll}/roles/unused/tasks/main.yml": "- debug: {msg: unused}\n",
                       f"{coll}/roles/docker/tests/test.yml":
                       "- hosts: localhost\n  roles: [docker]\n",
                       f"{coll}/docs/docker.md": "how\n",
                       f"{coll}/plugins/modules/probe.py": "# a module\n",
                       f"{coll}/meta/runtime.yml": "requires_ansible: '>=2.15'\n",
                       f"{coll}/README.md": "the collection\n"})
    app = inputs_of(zoo)["app"]
    used = {p for p in app if p.startswith(coll)}
    assert {f"{coll}/galaxy.yml", f"{coll}/roles/docker/tasks/main.yml",
            f"{coll}/plugins/modules/probe.py", f"{coll}/meta/runtime.yml"} <= used, used
    assert not used & {f"{coll}/roles/unused/tasks/main.yml", f"{coll}/docs/docker.md",
                       f"{coll}/README.md"}, used


@pytest.mark.parametrize("config, read", [
    ({}, {"default.yml", "default/extra.yml"}),                       # Packer's host_alias
    ({"host_alias": "web1"}, {"web1.yaml"}),
    ({"inventory_file": "ansible/hosts"}, {"default.yml", "default/extra.yml", "web1.yaml",
                                           "other.yml"}),              # any host: all of them
])
def test_host_vars_are_inputs_for_the_instances_own_inventory_name(zoo, config, read):
    template = zoo / "packer/app.json"
    data = json.loads(template.read_text())
    for provisioner in data["provisioners"]:            # both of its Ansible runs
        if provisioner["type"] == "ansible":
            provisioner.update(config)
    template.write_text(json.dumps(data))
    names = ("default.yml", "default/extra.yml", "web1.yaml", "other.yml")
    shapes.write(zoo, {**{f"ansible/host_vars/{n}": "x: 1\n" for n in names},
                       "ansible/hosts": "default\n"})
    found = {p.removeprefix("ansible/host_vars/") for p in inputs_of(zoo)["app"]
             if p.startswith("ansible/host_vars/")}
    assert found == read


def test_a_role_from_a_requirements_file_is_tracked_by_it(zoo):
    graph = load_graph(zoo)
    app = image_inputs(graph, graph.images["app"])
    assert app.roles["ntp_client"] == "ansible/requirements.yml"
    assert [r.missing_roles for r in app.ansible if r.playbook == "ansible/app.yml"] == \
        [("ntp_client",)]


def test_a_vendored_galaxy_role_is_tracked_by_its_files_and_not_linted(zoo):
    shapes.write(zoo, {"ansible/roles/ntp_client/tasks/main.yml": "- debug: {}\n",
                       "ansible/roles/ntp_client/meta/.galaxy_install_info": "version: 2.3.0\n"})
    graph = load_graph(zoo)
    app = image_inputs(graph, graph.images["app"])
    assert "ansible/roles/ntp_client/tasks/main.yml" in app.files
    assert "ansible/roles/ntp_client" in app.third_party


def test_the_kind_of_image_is_known(zoo):
    graph = load_graph(zoo)
    assert {n: image_inputs(graph, i).kind for n, i in graph.images.items()} == \
        {"shell": "shell", "eks": "shell", "app": "ansible", "local": "ansible"}


def test_the_sandbox_leaves_out_what_needs_an_instance(zoo):
    graph = load_graph(zoo)
    shell = image_inputs(graph, graph.images["shell"])
    assert shell.dropped_in_sandbox == tuple(f"provisioner {i} ({t})" for i, t in [
        (1, "shell"), (2, "shell"), (3, "file"), (4, "file"), (5, "powershell")])


@pytest.mark.parametrize("field, value, expected", [
    ("script", "scripts/{{env `SCRIPT`}}.sh",
     "provisioner 1 (shell) script 'scripts/{{env `SCRIPT`}}.sh': cannot be resolved before the "
     "build ({{env `SCRIPT`}} is only known during the build): list the files it may read under "
     "extra_inputs of image shell in amis.yaml, e.g. extra_inputs: [\"packer/linux/scripts/*.sh\"]"),
    ("script", "{{user `nope`}}/x.sh", "user variable nope is not declared"),
    ("script", "{{user `source_ami`}}.sh", "user variable source_ami is only known during the build"),
    ("script", "/etc/profile", "an absolute path cannot be tracked"),
    ("script", "../../../outside.sh", "outside the repository"),
    ("script", "scripts/missing.sh", "packer/linux/scripts/missing.sh does not exist"),
])
def test_untrackable_references_are_refused_with_one_line(zoo, field, value, expected):
    path = zoo / "packer/linux/buildkite-ami.json"
    data = json.loads(path.read_text())
    data["provisioners"][0][field] = value
    path.write_text(json.dumps(data, indent=2))
    message = refusal(zoo, "shell")
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1)
                if text.strip().startswith(f'"{field}": {json.dumps(value)}'))
    assert message.startswith(f"packer/linux/buildkite-ami.json:{line}: provisioner 1 (shell) "
                              "script")
    assert expected in message


def test_a_declared_extra_input_covers_an_unresolved_reference(zoo):
    path = zoo / "packer/linux/buildkite-ami.json"
    data = json.loads(path.read_text())
    data["provisioners"][0]["script"] = "scripts/{{env `SCRIPT`}}.sh"
    path.write_text(json.dumps(data))
    graph_file = zoo / "amis.yaml"
    graph_file.write_text(graph_file.read_text().replace(
        "    var_files: [packer/linux/vars.json]\n",
        "    var_files: [packer/linux/vars.json]\n    extra_inputs: [\"packer/linux/scripts/**\"]\n"))
    shell = inputs_of(zoo)["shell"]
    assert shell["packer/linux/scripts/install-x86_64.sh"] == "extra_inputs (amis.yaml)"


def test_extra_inputs_folder_glob_means_every_file_under_it(zoo):
    graph_file = zoo / "amis.yaml"
    graph_file.write_text(graph_file.read_text().replace(
        "    template: packer/local.json\n",
        "    template: packer/local.json\n    extra_inputs: [\"shared/**\"]\n"))
    local = inputs_of(zoo)["local"]
    assert {"shared/unused.yml", "shared/tasks/banner.yml", "shared/vars/limits.yml"} <= set(local)


@pytest.mark.parametrize("provisioner, expected", [
    ({"type": "puppet-masterless", "manifest_file": "site.pp"},
     "provisioner 1 (puppet-masterless): provisioner type 'puppet-masterless' names files this "
     "tool cannot track"),
    ({"type": "shell", "scripts": "not-a-list-of-strings", "script": 3},
     "provisioner 1 (shell) script: must be a string or a list of strings"),
])
def test_unknown_provisioners_are_refused(zoo, provisioner, expected):
    path = zoo / "packer/local.json"
    data = json.loads(path.read_text())
    data["provisioners"] = [provisioner]
    path.write_text(json.dumps(data))
    assert expected in refusal(zoo, "local")


def test_an_unpinned_requirement_is_refused(zoo):
    (zoo / "ansible/requirements.yml").write_text("roles:\n  - name: ntp_client\n"
                                                  "    src: geerlingguy.ntp\n")
    assert refusal(zoo, "app") == (
        "ansible/requirements.yml: role 'ntp_client' has no pinned version: set 'version:' to "
        "a release or commit (an unpinned requirement changes under you)")


@pytest.mark.parametrize("version, ok", [
    ("develop", False), ("main", False), ("feature/x", False), (">=1.0.0", False),
    ("*", False), ("2.x", False), ("v2", False), ("1-stable", False), ("2.3.0", True), ("v1.2.0-rc1", True), ("==9.0.0", True),
    ("3f2a9c1", True), ("0123456789abcdef0123456789abcdef01234567", True),
])
def test_only_a_release_tag_or_a_commit_is_a_pin(zoo, version, ok):
    # skeleton-packer's shape: a Galaxy role pinned to a branch
    (zoo / "ansible/requirements.yml").write_text(
        "roles:\n  - name: ntp_client\n    src: https://github.com/cisagov/ansible-role-ntp\n"
        f"    version: {version!r}\n")
    if ok:
        assert inputs_of(zoo)["app"]["ansible/requirements.yml"]
    else:
        assert refusal(zoo, "app") == (
            f"ansible/requirements.yml: role 'ntp_client' version {version!r} is not a release "
            "tag or a commit id (a branch or a range moves under you): pin a release such as "
            "v1.2.0, or a commit")


@pytest.mark.parametrize("src, defaults", [
    ("/etc/pip.conf", ""),
    # image-builder's shape: the path comes from a variable set to a host file
    ("{{ pip_conf_file }}", "pip_conf_file: /etc/pip.conf\n"),
])
def test_a_host_file_read_by_absolute_path_is_refused(zoo, src, defaults):
    role = "ansible/shared-roles/hardening"
    shapes.write(zoo, {f"{role}/defaults/main.yml": "---\n" + defaults,
                       f"{role}/tasks/main.yml":
                       f"- ansible.builtin.copy: {{src: \"{src}\", dest: /etc/pip.conf}}\n"})
    assert refusal(zoo, "app") == (
        f"{role}/tasks/main.yml:1: ansible.builtin.copy '/etc/pip.conf': reads /etc/pip.conf from "
        "the build host, outside the repository, which no digest sees: copy the file into the "
        "repository (the role's files/ or templates/) and name it relatively, or declare it "
        "under host_inputs: of the image")


def test_a_role_default_is_not_trusted_to_name_what_is_read(zoo):
    # a play's vars_files, group_vars or -e @file may set it to anything
    role = "ansible/shared-roles/hardening"
    shapes.write(zoo, {f"{role}/defaults/main.yml": "---\nconf: pip.conf\n",
                       f"{role}/files/pip.conf": "[global]\n",
                       f"{role}/tasks/main.yml":
                       "- ansible.builtin.copy: {src: \"{{ conf }}\", dest: /etc/pip.conf}\n"})
    assert "'{{ conf }}': cannot be resolved before the build" in refusal(zoo, "app")


def test_a_collection_neither_vendored_nor_pinned_is_refused(zoo):
    (zoo / "ansible/second.yml").write_text(
        "- hosts: all\n  tasks:\n    - community.general.ufw: {state: enabled}\n")
    message = refusal(zoo, "app")
    assert message.startswith("ansible/second.yml:3: module community.general.ufw: collection "
                              "community.general is neither in the repository")
    (zoo / "ansible/requirements.yml").write_text(
        (zoo / "ansible/requirements.yml").read_text()
        + "collections:\n  - name: community.general\n    version: 9.0.0\n")
    assert inputs_of(zoo)["app"]["ansible/requirements.yml"]


@pytest.mark.parametrize("entry", [
    # Companies House's shape: a namespace folder of collections in one git repository
    "  - name: https://github.com/companieshouse/ansible-collections.git#ch_collections\n"
    "    type: git\n    version: 0.1.146\n",
    "  - name: git+https://github.com/acme/ch_collections.git\n"
    "    version: 4f2a9c1e0b7d3a5c6e8f9a0b1c2d3e4f5a6b7c8d\n",       # a commit
    "  - source: git@github.com:acme/ansible-collection-base.git\n"
    "    name: git@github.com:acme/ansible-collection-base.git\n    type: git\n    version: v1.2.0\n",
])
def test_a_collection_pinned_as_a_git_repository_is_pinned(zoo, entry):
    (zoo / "ansible/second.yml").write_text(
        "- hosts: all\n  tasks:\n    - ch_collections.base.banner: {text: hi}\n")
    assert "collection ch_collections.base is neither" in refusal(zoo, "app")
    (zoo / "ansible/requirements.yml").write_text(
        (zoo / "ansible/requirements.yml").read_text() + "collections:\n" + entry)
    assert "ansible/requirements.yml" in inputs_of(zoo)["app"]     # no longer refused


def test_a_git_collection_of_another_name_does_not_pin_it(zoo):
    (zoo / "ansible/second.yml").write_text(
        "- hosts: all\n  tasks:\n    - ch_collections.base.banner: {text: hi}\n")
    (zoo / "ansible/requirements.yml").write_text(
        (zoo / "ansible/requirements.yml").read_text() + "collections:\n"
        "  - name: https://github.com/acme/other.git#tools\n    type: git\n    version: 1.0.0\n")
    assert "collection ch_collections.base is neither" in refusal(zoo, "app")


@pytest.mark.parametrize("src", ["{{ item.name }}", "{{ item['name'] }}"])
def test_item_over_a_list_in_the_roles_vars_is_each_file_in_the_role(zoo, src):
    # Companies House's shape: the files a role copies, listed in its vars/
    role = "ansible/shared-roles/hardening"
    shapes.write(zoo, {f"{role}/vars/main.yml": "conf_files:\n  - {name: a.conf, dest: /etc/a}\n"
                                                "  - {name: b.conf, dest: /etc/b}\n",
                       f"{role}/files/a.conf": "a\n", f"{role}/files/b.conf": "b\n",
                       f"{role}/files/unused.conf": "not copied\n",
                       f"{role}/tasks/main.yml": "- ansible.builtin.copy:\n    src: \"" + src
                       + "\"\n    dest: \"{{ item.dest }}\"\n  loop: \"{{ conf_files }}\"\n"})
    found = inputs_of(zoo)["app"]                       # not refused: each one is read
    assert f"{role}/files/a.conf" in found and f"{role}/files/b.conf" in found
    # defaults/ are not trusted to name what is read: a play or inventory may set them
    shapes.write(zoo, {f"{role}/defaults/main.yml": (zoo / f"{role}/vars/main.yml").read_text()})
    (zoo / f"{role}/vars/main.yml").unlink()
    assert "cannot be resolved before the build" in refusal(zoo, "app")


def test_a_loop_over_an_empty_extra_vars_list_reads_nothing(zoo):
    template = zoo / "packer/app.json"
    data = json.loads(template.read_text())
    data["provisioners"][0]["extra_arguments"] += ["-e", "extra_files=[]"]
    template.write_text(json.dumps(data))
    role = "ansible/shared-roles/hardening"
    shapes.write(zoo, {f"{role}/tasks/main.yml": "- ansible.builtin.copy: {src: \"{{ item }}\", "
                                                 "dest: /etc/}\n  loop: \"{{ extra_files }}\"\n"})
    assert f"{role}/tasks/main.yml" in inputs_of(zoo)["app"]
    data["provisioners"][0]["extra_arguments"][-1] = "extra_files=[a.conf]"
    template.write_text(json.dumps(data))
    assert "cannot be resolved before the build" in refusal(zoo, "app")


def test_a_jinja_path_in_a_play_is_refused_unless_declared(zoo):
    (zoo / "ansible/README.md").write_text("not read by any build\n")
    (zoo / "ansible/second.yml").write_text(
        "- hosts: all\n  tasks:\n    - ansible.builtin.copy: {src: 'conf/{{ item }}', "
        "dest: /tmp}\n      loop: '{{ names }}'\n")
    message = refusal(zoo, "app")
    assert message.startswith("ansible/second.yml ansible.builtin.copy 'conf/{{ item }}': cannot "
                              "be resolved before the build")
    assert 'e.g. extra_inputs: ["ansible/conf/*"]' in message


def test_item_over_a_written_out_loop_is_each_file(zoo):
    (zoo / "ansible/files").mkdir(exist_ok=True)
    (zoo / "ansible/files/a.txt").write_text("a\n")
    (zoo / "ansible/second.yml").write_text(
        "- hosts: all\n  tasks:\n    - ansible.builtin.copy: {src: '{{ item }}', dest: /tmp}\n"
        "      loop: [a.txt, b.txt]\n")
    # named at the line that reads it: the loop's
    assert refusal(zoo, "app").startswith("ansible/second.yml:4: ansible.builtin.copy 'b.txt': "
                                          "not found in ")
    (zoo / "ansible/files/b.txt").write_text("b\n")
    app = inputs_of(zoo)["app"]
    assert "ansible/files/a.txt" in app and "ansible/files/b.txt" in app
    # image-builder's providers role: {{ item.src }} over mappings written out
    (zoo / "ansible/second.yml").write_text(
        "- hosts: all\n  tasks:\n    - ansible.builtin.copy: {src: '{{ item.src }}', "
        "dest: '{{ item.dest }}'}\n      loop:\n        - {src: a.txt, dest: /a}\n"
        "        - {src: c.txt, dest: /c}\n")
    assert refusal(zoo, "app").startswith("ansible/second.yml:6: ansible.builtin.copy 'c.txt': "
                                          "not found in ")


def test_a_path_that_begins_with_an_expression_is_never_covered_by_extra_inputs(zoo):
    # '{{ where }}' may be '/etc': no repository pattern can vouch for it
    (zoo / "ansible/second.yml").write_text(
        "- hosts: all\n  tasks:\n    - ansible.builtin.copy: {src: '{{ where }}/a.txt', "
        "dest: /tmp}\n")
    graph = zoo / "amis.yaml"
    graph.write_text(graph.read_text().replace(
        "playbook: ansible/app.yml", "playbook: ansible/app.yml\n    extra_inputs: [\"**\"]"))
    message = refusal(zoo, "app")
    assert message.startswith("ansible/second.yml ansible.builtin.copy '{{ where }}/a.txt': "
                              "cannot be resolved before the build")
    assert "may name a file outside the repository" in message and "extra_inputs: [" not in message


def test_a_templated_role_name_is_refused(zoo):
    (zoo / "ansible/second.yml").write_text("- hosts: all\n  roles: ['{{ which }}']\n")
    assert "role '{{ which }}' cannot be resolved before the build" in refusal(zoo, "app")


def test_a_role_only_outside_the_repository_is_refused(zoo, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ansible/roles/elsewhere/tasks").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    (zoo / "ansible/second.yml").write_text("- hosts: all\n  roles: [elsewhere]\n")
    message = refusal(zoo, "app")
    assert f"role 'elsewhere' is only in {home}/.ansible/roles/elsewhere, outside the " \
           "repository" in message


def test_a_roles_path_outside_the_repository_is_refused(zoo, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "hardening/tasks").mkdir(parents=True)
    (zoo / "ansible.cfg").write_text(f"[defaults]\nroles_path = {elsewhere}\n")
    assert f"role 'hardening' is only in {elsewhere}/hardening, outside the " \
           "repository" in refusal(zoo, "app")
    (zoo / "ansible.cfg").write_text(f"[defaults]\nroles_path = {zoo}/ansible/shared-roles\n")
    assert "ansible/shared-roles/hardening/tasks/main.yml" in inputs_of(zoo)["app"]


def test_lookups_and_role_paths_outside_the_role_are_followed(zoo):
    shapes.write(zoo, {
        "ansible/shared-roles/hardening/tasks/main.yml":
            "- ansible.builtin.include_tasks: ../../../../shared/tasks/banner.yml\n"
            "- ansible.builtin.debug: {msg: \"{{ lookup('file', 'notes/motd.txt') }}\"}\n",
        "ansible/files/notes/motd.txt": "hi\n"})
    app = inputs_of(zoo)["app"]
    assert "ansible/files/notes/motd.txt" in app


def test_a_fifo_among_inputs_is_one_line(zoo):
    os.mkfifo(zoo / "packer/linux/conf/pipe")
    assert refusal(zoo, "shell") == ("packer/linux/conf/pipe: not a regular file (a FIFO, socket "
                                     "or device): inputs must be regular files: remove it")


def test_a_symlink_loop_among_inputs_is_one_line(zoo):
    os.symlink("..", zoo / "packer/linux/conf/systemd/loop")
    assert "a symbolic link loop" in refusal(zoo, "shell")


@pytest.mark.parametrize("target, name", [
    ("/etc/hostname", "packer/linux/conf/systemd/hostname"),
    ("/proc/self/environ", "packer/linux/conf/systemd/environ"),
    ("/usr/share", "packer/linux/conf/elsewhere"),       # a folder outside
])
def test_a_symlink_out_of_the_repository_is_one_line(zoo, target, name):
    os.symlink(target, zoo / name)
    real = os.path.realpath(target)
    assert refusal(zoo, "shell") == (f"{name}: a symbolic link to {real}, outside the repository: "
                                     "put the file itself in the repository (what is outside is "
                                     "not tracked)")


def test_a_symlink_inside_the_repository_is_followed(zoo):
    # image-builder's shape: roles/firstboot/defaults -> ../node/defaults
    shapes.write(zoo, {"ansible/shared-roles/node/defaults/main.yml": "node_port: 1\n"})
    os.symlink("../node/defaults", zoo / "ansible/shared-roles/hardening/defaults")
    app = inputs_of(zoo)["app"]
    assert "ansible/shared-roles/hardening/defaults/main.yml" in app


def test_a_file_name_that_is_not_utf8_is_one_line(zoo):
    name = os.fsencode(zoo / "packer/linux/conf") + b"/caf\xe9.cfg"
    with open(name, "wb") as f:
        f.write(b"x")
    assert "caf\\xe9.cfg: the file name is not valid UTF-8: rename it" in refusal(zoo, "shell")


# -- a property: whatever provisioners a template has, every file they name is an input --

POOL = [f"files/f{i}.txt" for i in range(8)] + ["folder/a.txt", "folder/sub/b.txt"]


def provisioner():
    paths = st.sampled_from(POOL)
    return st.one_of(
        st.builds(lambda p: {"type": "shell", "script": p}, paths),
        st.builds(lambda ps: {"type": "shell", "scripts": ps}, st.lists(paths, max_size=3)),
        st.builds(lambda p: {"type": "shell-local", "script": p}, paths),
        st.builds(lambda ps: {"type": "powershell", "scripts": ps}, st.lists(paths, max_size=3)),
        st.builds(lambda p: {"type": "file", "source": p, "destination": "/tmp/x"},
                  st.sampled_from([*POOL, "folder", "folder/"])),
        st.builds(lambda p: {"type": "file", "source": "{{template_dir}}/../" + p,
                             "destination": "/tmp/x"}, paths),
        st.builds(lambda p: {"type": "ansible", "playbook_file": "ansible/play.yml",
                             "extra_arguments": ["-e", f"@{p}"]}, paths),
        st.builds(lambda p: {"type": "ansible-local", "playbook_file": "ansible/play.yml",
                             "playbook_paths": [p]}, paths),
    )


def _named(prov: dict) -> set[str]:
    named = set()
    for key in ("script", "source"):
        if key in prov:
            named.add(prov[key].replace("{{template_dir}}/../", ""))
    for key in ("scripts", "playbook_paths"):
        named |= set(prov.get(key, []))
    named |= {a[1:] for a in prov.get("extra_arguments", []) if a.startswith("@")}
    if "playbook_file" in prov:
        named.add(prov["playbook_file"])
    files = set()
    for n in named:
        n = n.rstrip("/")
        files |= {p for p in POOL if p == n or p.startswith(n + "/")}
        if n == "ansible/play.yml":
            files.add(n)
    return files


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pool")
    shapes.write(root, {p: p for p in POOL})
    shapes.write(root, {"ansible/play.yml": "- hosts: all\n  tasks: []\n",
                        "amis.yaml": "region: eu-west-1\nsource: {name: centos, ami: ami-12345678}\n"
                                     "images:\n  x:\n    parent: centos\n"
                                     "    template: packer/x.json\n"})
    return root


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(provisioner(), max_size=6))
def test_every_named_file_is_an_input(pool, provisioners):
    (pool / "packer").mkdir(exist_ok=True)
    (pool / "packer/x.json").write_text(json.dumps({
        "builders": [{"type": "amazon-ebs", "source_ami": "{{user `source_ami`}}"}],
        "provisioners": provisioners}))
    found = inputs_of(pool)["x"]
    expected = set().union(*(_named(p) for p in provisioners)) if provisioners else set()
    assert expected <= set(found)
    assert set(found) - expected <= {"packer/x.json"}


def test_an_include_role_hook_with_an_empty_default_is_no_role(zoo):
    role = "ansible/shared-roles/hardening"
    shapes.write(zoo, {f"{role}/defaults/main.yml": "---\nhook_role: ''\n",
                       f"{role}/tasks/main.yml":
                       "- ansible.builtin.include_role: {name: \"{{ hook_role }}\"}\n"
                       "  when: hook_role | length > 0\n"})
    assert inputs_of(zoo)["app"][f"{role}/tasks/main.yml"]
    shapes.write(zoo, {f"{role}/defaults/main.yml": "---\nhook_role: ''\n",
                       f"{role}/tasks/main.yml":
                       "- ansible.builtin.include_role: {name: \"{{ other }}\"}\n"})
    assert "role '{{ other }}' cannot be resolved before the build" in refusal(zoo, "app")


def test_a_declared_host_file_is_accepted_and_its_content_is_in_the_digest(zoo, tmp_path):
    from tasks.core.digest import Hasher
    from tasks.core.settings import load_settings
    from tasks.adapters.fakes import FakeGit
    from tasks.state.checkout import Checkout
    host = tmp_path / "host/pip.conf"
    host.parent.mkdir()
    host.write_text("[global]\n")
    role = "ansible/shared-roles/hardening"
    shapes.write(zoo, {f"{role}/tasks/main.yml":
                       f"- ansible.builtin.copy: {{src: {host}, dest: /etc/pip.conf}}\n"})
    assert "declare it under host_inputs: of the image" in refusal(zoo, "app")
    graph_file = zoo / "amis.yaml"
    graph_file.write_text(graph_file.read_text().replace(
        "  app:\n", f"  app:\n    host_inputs: [{host}]\n", 1))
    assert inputs_of(zoo)["app"]
    graph = load_graph(zoo)
    settings = load_settings(zoo, env={"AMI_BUCKET": "test-amis"})
    first = Checkout(settings, graph, Hasher(), FakeGit()).digest_settings("app")["host"][str(host)]
    host.write_text("[global]\nindex-url = https://mirror.example/simple\n")
    assert Checkout(settings, graph, Hasher(), FakeGit()).digest_settings("app")["host"][str(host)] != first


@pytest.mark.parametrize("value, refused", [("/etc/pip.conf", True), ("", False)])
def test_a_host_path_handed_to_ansible_through_a_var_file_is_refused(zoo, value, refused):
    """image-builder's shape: a Packer variable, set in a var file, handed to
    Ansible as -e pip_conf_file=..., read by a role's copy."""
    template = zoo / "packer/app.json"
    data = json.loads(template.read_text())
    data["variables"]["pip_conf_file"] = ""
    data["provisioners"][0]["extra_arguments"] += [
        "--extra-vars", "pip_conf_file={{user `pip_conf_file`}} other=1"]
    template.write_text(json.dumps(data))
    role = "ansible/shared-roles/hardening"
    shapes.write(zoo, {"packer/app.vars.json": json.dumps({"pip_conf_file": value}),
                       f"{role}/tasks/main.yml":
                       "- ansible.builtin.copy: {src: \"{{ pip_conf_file }}\", dest: /etc/pip.conf}\n"
                       "  when: pip_conf_file != ''\n"})
    graph_file = zoo / "amis.yaml"
    graph_file.write_text(graph_file.read_text().replace(
        "    template: packer/app.json\n",
        "    template: packer/app.json\n    var_files: [packer/app.vars.json]\n", 1))
    if refused:
        assert refusal(zoo, "app").startswith(
            f"{role}/tasks/main.yml:1: ansible.builtin.copy '/etc/pip.conf': reads /etc/pip.conf "
            "from the build host")
    else:
        assert inputs_of(zoo)["app"][f"{role}/tasks/main.yml"]


@pytest.mark.parametrize("task, message", [
    ("- ansible.builtin.debug: {msg: \"{{ lookup('ansible.builtin.file', '/etc/pip.conf') }}\"}\n",
     "reads /etc/pip.conf from the build host"),
    ("- ansible.builtin.debug: {msg: \"{{ item }}\"}\n  with_file: [/etc/pip.conf]\n",
     "with_file '/etc/pip.conf': reads /etc/pip.conf from the build host"),
    ("- ansible.builtin.debug: {msg: \"{{ lookup('env', 'PIP_INDEX') }}\"}\n",
     "lookup('env', 'PIP_INDEX') reads the build host's environment"),
    ("- ansible.builtin.debug: {msg: \"{{ lookup('pipe', 'cat /etc/hostname') }}\"}\n",
     "lookup('pipe') reads the build host"),
])
def test_other_ways_of_reading_the_build_host_are_refused(zoo, task, message):
    shapes.write(zoo, {"ansible/shared-roles/hardening/tasks/main.yml": task})
    assert message in refusal(zoo, "app")


ROLE = "ansible/shared-roles/hardening"
# The 14 forms an attacker's pass got past plan, and more: any spelling, any place.
HOST_READS = [
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{{ lookup ('env', 'HOME') }}\"}\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{{ lookup('en' ~ 'v', 'HOME') }}\"}\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{{ query('env', 'HOME') }}\"}\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{{ q('ansible.builtin.pipe', 'id') }}\"}\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{{ lookup('lines', 'cat /x') }}\"}\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{{ lookup('url', 'https://x') }}\"}\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{{ lookup('ini', 'k file=/etc/x') }}\"}\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{{ lookup('password', '/tmp/p') }}\"}\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{{ lookup('unvault', 'v.yml') }}\"}\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{{ lookup('fileglob', '/etc/*.conf') }}\"}\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{{ item }}\"}\n  with_fileglob: [/etc/*.conf]\n"),
    (f"{ROLE}/tasks/main.yml", "- include_vars: \"{{ item }}\"\n  with_pipe: [ls /etc]\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: hi}\n  when: lookup('env', 'CI') == 'true'\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{% set l = lookup %}{{ l('env', 'X') }}\"}\n"),
    (f"{ROLE}/defaults/main.yml", "index: \"{{ lookup('env', 'PIP_INDEX') }}\"\n"),
    (f"{ROLE}/vars/main.yml", "who: \"{{ lookup('pipe', 'whoami') }}\"\n"),
    (f"{ROLE}/templates/pip.conf.j2", "index-url = {{ lookup('env', 'PIP_INDEX') }}\n"),
    ("ansible/group_vars/all.yml", "token: \"{{ lookup('file', '/etc/token') }}\"\n"),
    (f"{ROLE}/tasks/main.yml", "- debug: {msg: \"{{ lookup('community.general.dig', 'x') }}\"}\n"),
    # the second attacker's pass: other files, keys, and other delimiters
    ("ansible/group_vars/all.json", '{"h": "{{ lookup(\'env\', \'HOME\') }}"}\n'),
    ("ansible/group_vars/all", "h: \"{{ lookup('env', 'HOME') }}\"\n"),
    (f"{ROLE}/tasks/main.yml", "- set_fact:\n    \"{{ lookup('env', 'HOME') | basename }}\": 1\n"),
    (f"{ROLE}/templates/motd.j2", "#jinja2: variable_start_string: '[%', variable_end_string: "
                                  "'%]'\nX=[% lookup('pipe', 'cat /etc/hostname') %]\n"),
]


@pytest.mark.parametrize("rel, text", HOST_READS)
def test_every_host_read_is_refused_in_any_spelling_and_place(zoo, rel, text):
    shapes.write(zoo, {rel: text})
    message = refusal(zoo, "app")
    assert message.startswith(rel) and "pass the value as a variable" in message, message


@pytest.mark.parametrize("files", [
    # rendered by the template module, though kept under files/ or vars/
    {f"{ROLE}/files/evil.conf": "X={{ lookup('pipe', 'id') }}\n",
     f"{ROLE}/tasks/main.yml": "- template: {src: ../files/evil.conf, dest: /etc/evil}\n"},
    # loaded as variables, though kept under files/, or JSON
    {f"{ROLE}/files/v.yml": "h: \"{{ lookup('pipe', 'id') }}\"\n",
     f"{ROLE}/tasks/main.yml": "- include_vars: {file: ../files/v.yml}\n"},
    {"ansible/vars/x.json": '{"h": "{{ lookup(\'env\', \'HOME\') }}"}',
     "ansible/second.yml": "- hosts: all\n  vars_files: [vars/x.json]\n  tasks: []\n"},
])
def test_a_file_is_checked_as_ansible_reads_it_wherever_it_is(zoo, files):
    shapes.write(zoo, files)
    assert "pass the value as a variable" in refusal(zoo, "app")


@pytest.mark.parametrize("task", [
    "- command: cat /etc/hostname\n  delegate_to: localhost\n",
    "- command: cat /root/.aws/credentials\n  delegate_to: 127.0.0.1\n",
    "- local_action: ansible.builtin.command cat /etc/hostname\n",
    "- slurp: {src: /etc/hostname}\n  connection: local\n",
    "- template: {src: motd.j2, dest: /etc/motd, variable_start_string: '[%'}\n",
    "- debug: {msg: \"{{ lookup('template', 'motd.j2', variable_start_string='[%') }}\"}\n",
])
def test_a_task_that_runs_off_the_instance_or_renders_unseen_is_refused(zoo, task):
    shapes.write(zoo, {f"{ROLE}/tasks/main.yml": task,
                       f"{ROLE}/templates/motd.j2": "[% lookup('pipe', 'id') %]\n"})
    message = refusal(zoo, "app")
    assert message.startswith(f"{ROLE}/tasks/main.yml") and (
        "runs on another host than the instance" in message
        or "changes Jinja2's delimiters" in message
        or "with Jinja2 delimiters of its own" in message), message


@pytest.mark.parametrize("play", ["- hosts: localhost\n  connection: local\n  tasks: []\n",
                                  "- hosts: [all, 127.0.0.1]\n  tasks: []\n",
                                  "- hosts: all\n  vars: {ansible_connection: local}\n"])
def test_a_play_on_the_build_host_is_refused(zoo, play):
    shapes.write(zoo, {"ansible/second.yml": play})
    assert "runs on another host than the instance" in refusal(zoo, "app")


@pytest.mark.parametrize("rel, text", [
    (f"{ROLE}/tasks/main.yml",
     "- debug: {msg: \"{{ item.key }}\"}\n  with_dict: {a: 1}\n"
     "- debug: {msg: \"{{ lookup('vars', 'ansible_host') }} {{ query('sequence', 'count=3') }}\"}\n"
     "- debug: {msg: \"{{ lookup('ansible.builtin.file', 'motd') }}\"}\n"
     "- debug: {msg: \"{{ item }}\"}\n  with_fileglob: ['*.conf']\n"),
    (f"{ROLE}/templates/motd.j2", "Welcome to {{ inventory_hostname }}\n"),
    (f"{ROLE}/files/raw.j2", "{{ lookup('pipe', 'id') }} is copied, never templated\n"),
    (f"{ROLE}/vars/main.yml", "go_template: !unsafe \"{{ lookup('pipe', 'id') }}\"\n"),
])
def test_pure_and_tracked_lookups_files_and_unsafe_values_are_allowed(zoo, rel, text):
    shapes.write(zoo, {rel: text, f"{ROLE}/files/motd": "hi\n", f"{ROLE}/files/a.conf": "a\n"})
    assert inputs_of(zoo)["app"]


def test_a_declared_environment_variable_may_be_looked_up(zoo):
    shapes.write(zoo, {f"{ROLE}/defaults/main.yml": "index: \"{{ lookup('env', 'PIP_INDEX') }}\"\n"})
    assert "declare it under env_inputs:" in refusal(zoo, "app")
    graph_file = zoo / "amis.yaml"
    graph_file.write_text(graph_file.read_text().replace(
        "  app:\n", "  app:\n    env_inputs: [PIP_INDEX]\n", 1))
    assert inputs_of(zoo)["app"]


def test_an_env_lookup_over_a_loop_of_names_is_declared_by_env_inputs(zoo):
    # a runner image's shape: proxies read from the build host's environment,
    # guarded by a when this tool cannot decide; env_inputs: covers them
    shapes.write(zoo, {f"{ROLE}/tasks/main.yml":
                       "- ansible.builtin.set_fact:\n    proxy: \"{{ lookup('env', item) }}\"\n"
                       "  loop: [http_proxy, https_proxy]\n"
                       "  when: ansible_os_family == 'Windows'\n"})
    assert "lookup('env', 'http_proxy') reads the build host's environment" in \
        refusal(zoo, "app")
    graph_file = zoo / "amis.yaml"
    text = graph_file.read_text()
    graph_file.write_text(text.replace("  app:\n", "  app:\n    env_inputs: [http_proxy]\n", 1))
    assert "lookup('env', 'https_proxy') reads the build host's environment" in \
        refusal(zoo, "app")
    graph_file.write_text(text.replace(
        "  app:\n", "  app:\n    env_inputs: [http_proxy, https_proxy]\n", 1))
    assert inputs_of(zoo)["app"]
    shapes.write(zoo, {f"{ROLE}/tasks/main.yml":          # a name known only later: refused
                       "- ansible.builtin.set_fact:\n    proxy: \"{{ lookup('env', item) }}\"\n"
                       "  loop: \"{{ proxies }}\"\n"})
    assert "lookup('env') of a variable named only during the build" in refusal(zoo, "app")


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


@pytest.mark.parametrize("text, message", [
    (BOMB, "its aliases (*name) expand to more than 1,000,000 values"),
    ("a: &a [1, *a]\n", "line 1: an alias (*name) inside the value it names, a loop"),
    ("- " * 150 + "x\n", "line 1: nested more than 100 deep: flatten it"),
    ("- " * 50_000 + "x\n", "exceeded maximum nesting depth: fix the YAML syntax"),
], ids=["alias-bomb", "alias-loop", "deep", "very-deep"])
def test_yaml_no_walk_could_finish_is_refused_at_once(zoo, text, message):
    # Expanded, the bomb is 9**9 values: a walk of it would never end.
    (zoo / "ansible/shared-roles/hardening/tasks/main.yml").write_text(text)
    refused = refusal(zoo, "app")
    assert refused.startswith("ansible/shared-roles/hardening/tasks/main.yml: ")
    assert message in refused


def test_a_bomb_beside_a_lookup_in_role_defaults_is_refused(zoo):
    # Ansible loads such a file without expanding it, and may never use the bomb.
    (zoo / "ansible/shared-roles/hardening/defaults").mkdir()
    (zoo / "ansible/shared-roles/hardening/defaults/main.yml").write_text(
        BOMB + "z: \"{{ lookup('pipe', 'cat /etc/shadow') }}\"\n")
    assert "its aliases (*name) expand to more than 1,000,000 values" in refusal(zoo, "app")


def test_amis_yaml_with_an_alias_bomb_is_refused(tmp_path):
    (tmp_path / "amis.yaml").write_text(BOMB)
    with pytest.raises(AmiError) as info:
        load_graph(tmp_path)
    assert str(info.value) == f"{tmp_path / 'amis.yaml'}: its aliases (*name) expand to more " \
        "than 1,000,000 values: write it with fewer aliases"


@pytest.mark.parametrize("task", [
    "ansible.builtin.copy: {src: '~/.aws/credentials', dest: /tmp/c}",
    "ansible.builtin.debug: {msg: \"{{ lookup('file', '~/.aws/credentials') }}\"}"])
def test_a_path_under_the_build_hosts_home_is_refused_even_with_a_decoy(zoo, task):
    """Ansible expands ~ on the build host: a decoy at files/~/... is not read."""
    (zoo / "ansible/files/~/.aws").mkdir(parents=True)
    (zoo / "ansible/files/~/.aws/credentials").write_text("decoy\n")
    (zoo / "ansible/second.yml").write_text(f"- hosts: all\n  tasks:\n    - {task}\n")
    message = refusal(zoo, "app")
    assert "~/.aws/credentials" in message and ("~ is a home folder of the build host" in message
                                                or "reads the build host" in message), message


@pytest.mark.parametrize("files", [
    {f"{ROLE}/vars/main": "gj: \"{{ lookup('env', 'PROBE_SECRET') }}\"\n"},
    {f"{ROLE}/tasks/main.yml": None,
     f"{ROLE}/tasks/main": "- debug: {msg: \"{{ lookup('pipe', 'id') }}\"}\n"},
    {f"{ROLE}/tasks/main.yml": "- debug:\n    var: lookup('pipe', 'id')\n"},
    {f"{ROLE}/tasks/main.yml": "- debug: {msg: \"{{ lookup('template', 'm.j2', **o) }}\"}\n",
     f"{ROLE}/templates/m.j2": "m\n"},
], ids=["extensionless-vars", "extensionless-tasks", "debug-var", "run-time-keywords"])
def test_what_ansible_also_reads_or_templates_is_checked_too(zoo, files):
    for rel, text in files.items():
        if text is None:
            (zoo / rel).unlink(missing_ok=True)
    shapes.write(zoo, {rel: text for rel, text in files.items() if text is not None})
    assert "pass the value as a variable" in refusal(zoo, "app")


@pytest.mark.parametrize("text", [
    "self._TemplateReference__context['look' ~ 'up']('pipe', 'id')",
    "''['__class__']['__mro__'][1]",
    "x.__class__",
])
def test_jinja2_internals_that_reach_a_lookup_by_a_made_name_are_refused(zoo, text):
    shapes.write(zoo, {f"{ROLE}/tasks/main.yml": f"- debug: {{msg: \"{{{{ {text} }}}}\"}}\n"})
    assert "uses lookup/query/q other than as a call" in refusal(zoo, "app")


def test_a_variable_named_with_underscores_is_a_variable(zoo):
    # geerlingguy's shape: a role's private variables are __name
    shapes.write(zoo, {f"{ROLE}/vars/main.yml": "__clamav_daemon: clamd\n",
                       f"{ROLE}/defaults/main.yml": "clamav_daemon: \"{{ __clamav_daemon }}\"\n",
                       f"{ROLE}/tasks/main.yml": "- debug: {msg: \"{{ _private | default('') }}\"}\n"})
    assert f"{ROLE}/vars/main.yml" in inputs_of(zoo)["app"]


def test_an_ansible_problem_is_named_at_its_tasks_line(zoo):
    """A task's problem is at the line, within that task, that holds what it
    quotes, else where the task starts; a value another task also writes
    does not pull it up the file."""
    (zoo / "ansible/files").mkdir(exist_ok=True)
    (zoo / "ansible/files/kept.txt").write_text("x\n")
    (zoo / "ansible/second.yml").write_text(
        "- hosts: all\n"
        "  tasks:\n"
        "    - name: kept.txt is named here first\n"
        "      ansible.builtin.debug: {msg: gone.txt}\n"
        "    - name: copy it\n"
        "      ansible.builtin.copy:\n"
        "        src: gone.txt\n"
        "        dest: /tmp\n"
        "    - name: a key that is no module\n"
        "      1: x\n")
    found = refusal(zoo, "app").splitlines()
    assert "ansible/second.yml:7: ansible.builtin.copy 'gone.txt': not found in " \
           "ansible/files/, ansible/: create it or fix the path" in found, found
    assert "ansible/second.yml:9: a task has the key 1, which is not a module or keyword " \
           "name: fix the task" in found, found
