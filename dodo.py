"""doit tasks for the AMI tree: `doit list` shows them, `doit` builds what changed."""

import sys
from pathlib import Path

from tasks.cli.creators import Creators
from tasks.cli.options import parallel_options
from tasks.cli.reporter import Reporter

_tasks = Creators(Path(__file__).resolve().parent)
_tasks.install_signal_handlers()     # Ctrl-C / SIGTERM cancel Packer cleanly
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
task_sandbox_stop = _tasks.task_sandbox_stop

DOIT_CONFIG = {
    "default_tasks": ["amis"],
    # sqlite3: safe when two doit processes touch it; dbm cannot be opened twice.
    # Beside .amis/, not in it: sqlite cannot save into a file deleted under it.
    "backend": "sqlite3",
    "dep_file": ".doit-amis.sqlite3",
    "check_file_uptodate": "md5",
    # Independent images build at once; `doit -n 1 amis` builds one at a time.
    # Packer is a subprocess: threads are enough and need no pickling.
    "num_process": _tasks.jobs(),
    "par_type": "thread",
    # One image failing stops its children, not its siblings.
    "continue": True,
    "verbosity": 2,
    "reporter": Reporter(sys.stderr, {}, at_end=_tasks.at_end),   # ends with the summary
    "minversion": "0.36.0",
    **parallel_options(sys.argv),   # `doit amis -n 4 -P thread`
}
