"""Scale-out on Ray: the same tasks, plugins, records, outputs and resume over many engines.

backend   RayBackend: the Ray Data pipeline (decode tasks -> engine actor pool -> records)
actor     EngineActor: one engine and the one loop driver inside a Ray actor
decode    the decode stage (``task.load`` on CPU tasks)
entries   what flows between the stages
cluster   joining or starting the cluster, and checking it can hold the engines
"""

from vlmcap.distributed.backend import RayBackend

__all__ = ["RayBackend"]
