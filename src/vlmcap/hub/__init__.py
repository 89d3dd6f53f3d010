"""Model management: which models vlmcap knows, where they are on disk, how to fetch them.

- ``catalog``: the known models (``KnownModel``: variant, hub id, revision, licence, plugin)
  and ``find`` by variant name or hub id.
- ``local``: where a model's weights are on this machine (an explicit path,
  ``$VLMCAP_MODEL_DIR/<org>/<name>``, the Hugging Face cache), with their size.
- ``download``: fetch a model from the Hugging Face hub, with errors a user can act on
  (offline, no access, not enough disk space).

``vlmcap models`` and ``vlmcap download`` are the command-line side (``vlmcap.cli.models``).
"""
