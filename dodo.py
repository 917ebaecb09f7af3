"""doit tasks for the AMI tree: `doit list` shows them, `doit` builds what changed."""

import sys

from tasks.creators import (  # noqa: F401
    default_jobs, parallel_options,
    task_ami, task_amis, task_annotate, task_cloud_init, task_explain, task_gc, task_graph,
    task_pipeline, task_plan, task_promote, task_pull, task_sandbox_stop, task_validate,
)

DOIT_CONFIG = {
    "default_tasks": ["amis"],
    # sqlite3: safe when two doit processes touch it; dbm cannot be opened twice.
    "backend": "sqlite3",
    "dep_file": ".amis/doit.sqlite3",
    "check_file_uptodate": "md5",
    # Independent images build at once; `doit -n 1 amis` builds one at a time.
    # Packer is a subprocess: threads are enough and need no pickling.
    "num_process": default_jobs(),
    "par_type": "thread",
    "verbosity": 2,
    "minversion": "0.36.0",
    **parallel_options(sys.argv),   # `doit amis -n 4 -P thread`
}
