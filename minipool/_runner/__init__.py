"""The ``python -m minipool run`` runner: a function mapped over the records of a file.

Its modules follow a run's data flow:

- ``cli``: the command line, parsed and checked, into ``options.RunOptions``;
- ``options``: what a run was asked to do, and its exit statuses;
- ``targets``: ``MODULE:FUNC`` or ``path.py:FUNC`` loaded, and ``UsageError``;
- ``run``: the files checked and opened, in an order that cannot lose data;
- ``records``: input records read as they come;
- ``pool_run``: the records mapped over a pool, each outcome written as it comes;
- ``job``: in the worker, a record in and its output line out;
- ``messages``: a record's error, or a failed init, told to a person;
- ``output``: output lines written whole, read back to resume, rewritten;
- ``logs``: the workers' log events written where ``--log-file`` says.
"""
