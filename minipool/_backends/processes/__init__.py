"""The process backend: worker processes of the pool's own, looked after by one master thread.

``master.Master`` is the backend (its module opens with the diagram);
``handle`` is the master's view of one worker process, ``worker`` is what
runs in it, ``shared`` the memory both sides read and write.
"""

from .master import Master as Master
