"""The process backend: worker processes of the pool's own, looked after by one master thread.

``master.Master`` is the backend; its module opens with the diagram. Along
the data flow: ``dispatch`` decides where each task goes (and takes back what
busy workers have not started), ``handle`` is the master's view of one worker
process, ``shared`` the memory both sides use (the pool's flags, each worker's
``Gate``), ``worker`` what runs in the process and ``sender`` how it writes
back, ``blame`` who a dead worker's death is pinned on, ``timeouts`` when jobs
overrun, ``wakeup`` how callers wake the master, ``log_spill`` where log
events wait until they are sent; ``start_method`` picks how workers are
created, and ``handover`` how ``init`` and its arguments reach each one.
"""

from .master import Master as Master
