"""Paths written in data files, confined to the folder of that file: ``confine``.

One policy for every path vlmcap reads from a data file (a manifest row, a QA set's image
cell): it names a file inside the data file's folder (the root). Refused, with the cause:

    a NUL character or a URL            (not a local path)
    an absolute path, where refused     (QA sets: paths are relative to the dataset root)
    a path that leaves the root         ('..' out of it, or an absolute path elsewhere)
    the root itself                     (a folder, not a file)
    a name or path too long             (over the file system's limits: it cannot be a file)
    a symbolic link out of the root     (its target, resolved, is not under the resolved root)

Symbolic links inside the root are followed. Files found by walking a folder the user named
are another matter (``vlmcap.media.inputs``): the user's own file system, whose links are
followed wherever they point.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from vlmcap.media.images import display_name


def confine(root: Path, value: str, *, root_name: str, absolute_ok: bool) -> tuple[Path, str]:
    """The file ``value`` names under ``root`` (absolute, as named: links not resolved) and
    its key (the POSIX path relative to ``root``). ``root_name`` says what the root is in
    messages ("the manifest's folder"). Raises ``ValueError`` with the cause."""
    if "\x00" in value:
        raise ValueError("the path contains a NUL character")
    if "://" in value:
        raise ValueError("URLs are not supported; download the files and give local paths")
    absolute = PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute()
    if absolute and not absolute_ok:
        raise ValueError(f"absolute paths are refused; write it relative to {root_name}")
    base = Path(os.path.abspath(root))
    real_base = Path(os.path.realpath(base))
    target = Path(os.path.normpath(base / value))  # an absolute value replaces the base
    key = None
    for folder in (base, real_base):
        if target == folder:
            raise ValueError(f"names {root_name} itself, not a file")
        if folder in target.parents:
            key = PurePosixPath(*target.relative_to(folder).parts).as_posix()
            break
    if key is None:
        how = "is" if absolute else "'..' leads"
        raise ValueError(f"{how} outside {root_name} ({base}); refused")
    try:
        os.lstat(target)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise ValueError(
                "the path is too long for the file system (a name or the whole path is over "
                "its limit)"
            ) from None
    real = Path(os.path.realpath(target))
    if real_base not in real.parents:
        raise ValueError(
            f"resolves through a symbolic link to {display_name(real)}, outside {root_name}; "
            "refused (links are followed only when they stay inside it)"
        )
    return target, key
