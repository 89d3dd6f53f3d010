"""The documented config example and option lists match the schema."""

from __future__ import annotations

import re
from pathlib import Path

from tests.options.test_config_files import caption_objects
from vlmcap.options import CAPTION, SERVE

ROOT = Path(__file__).resolve().parents[2]


def section(path: Path, start: str, end: str) -> str:
    text = path.read_text(encoding="utf-8")
    begin = text.index(start)
    return text[begin : text.index(end, begin + len(start))]


def flags_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))


def all_flags(command: str) -> set[str]:
    spec = CAPTION if command == "caption" else SERVE
    flags = {f for option in spec.options() for f in option.all_flags if f.startswith("--")}
    return flags | {"--help"}


def test_the_readme_config_example_is_a_valid_caption_config(tmp_path):
    options = section(ROOT / "README.md", "### Options and config files", "Environment variables")
    example = re.search(r"```yaml\n(.*?)```", options, re.S)
    assert example is not None
    path = tmp_path / "run.yaml"
    path.write_text(example.group(1), encoding="utf-8")
    parsed = CAPTION.resolve({"config_file": path})
    caption_objects(parsed)  # every value passes validation
    groups = {CAPTION.option(key).group.group for key in parsed.values}
    assert groups >= {"model", "prompt", "sampling", "input", "output", "run", "media"}
    assert groups >= {"engine", "loop", "client"}
    assert flags_in(options) <= all_flags("caption")


def test_docs_server_names_only_real_flags():
    doc = ROOT / "docs/server.md"
    serve = section(doc, "**`vlmcap serve`**", "- The server's arguments")
    assert flags_in(serve) <= all_flags("serve")
    client = section(doc, "**Client options of `vlmcap caption`**", "- `GET /v1/models`")
    assert flags_in(client) <= all_flags("caption")
    ignored = section(doc, "- Engine options (", "- Several clients")
    assert flags_in(ignored) <= {
        flag
        for option in CAPTION.options()
        if option.group.engine_side
        for flag in option.all_flags
    }
