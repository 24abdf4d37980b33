"""The ``python -m minipool`` runner: a function mapped over the records of a file.

Its modules follow a run's data flow:

- ``cli``: the command line, parsed and checked, into ``run.RunOptions``;
- ``targets``: ``MODULE:FUNC`` or ``path.py:FUNC`` loaded, and ``UsageError``;
- ``records``: input records read as they come, output lines written and read back;
- ``run``: the records mapped over a pool, each outcome written as one line;
- ``logs``: the workers' log events written where ``--log-file`` says.
"""
