"""What the guarded process and its watcher say to each other (no psutil here: the guarded side
imports this module, and it must stay cheap).

- the *life pipe*: only the guarded process holds its write end; end-of-file on the watcher's
  read end means the guarded process is gone, ``DISMISS`` written into it lets the watcher go;
- the *fork pipe*: a child forked by the guarded process writes its pid into it from an at-fork
  hook, so the watcher knows that child at once (a pid is ``PID_FORMAT``-packed: one write of a
  few bytes, which the kernel never interleaves with another);
- ``READY``: the watcher's first and only line on its stdout, once it has recorded the tree.
"""

from __future__ import annotations

import struct

DISMISS = b"x"
READY = b"ready\n"
PID_FORMAT = struct.Struct("<i")
