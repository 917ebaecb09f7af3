"""doit tasks for the AMI tree: `doit list` shows them, `doit` builds what changed."""

import sys
from pathlib import Path

from tasks.cli.creators import Creators

_tasks = Creators(Path(__file__).resolve().parent, argv=sys.argv)
_tasks.install_signal_handlers()     # Ctrl-C / SIGTERM cancel Packer cleanly
_tasks.tune_collector()             # few cycles, many long-lived objects: collect seldom
task_pull = _tasks.task_pull
task_ami = _tasks.task_ami
task_amis = _tasks.task_amis
task_validate = _tasks.task_validate
task_cloud_init = _tasks.task_cloud_init
task_inputs = _tasks.task_inputs
task_plan = _tasks.task_plan
task_graph = _tasks.task_graph
task_explain = _tasks.task_explain
task_pipeline = _tasks.task_pipeline
task_annotate = _tasks.task_annotate
task_promote = _tasks.task_promote
task_gc = _tasks.task_gc
task_test = _tasks.task_test
task_verify = _tasks.task_verify
task_revoke = _tasks.task_revoke
task_sandbox_stop = _tasks.task_sandbox_stop

DOIT_CONFIG = _tasks.doit_config(sys.argv)
