"""CloudFormation templates of deploy/cloudformation/: read YAML with short-form intrinsics.

Templates are sent as JSON (the long form), so what CloudFormation receives, what cfn-lint
checks and what the tests inspect are the same document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pipeline.config.settings import PROJECT_ROOT

TEMPLATES_DIR = PROJECT_ROOT / "deploy" / "cloudformation"

Template = dict[str, Any]


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref x` into `{"Ref": "x"}` and `!Sub s` into `{"Fn::Sub": s}`."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, attribute = value.split(".", 1)
        return {"Fn::GetAtt": [resource, attribute]}
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def loads(text: str) -> Template:
    document = yaml.load(text, Loader=_CfnLoader)  # a SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise ValueError("not a CloudFormation template (no Resources)")
    return document


def load(name: str, directory: Path = TEMPLATES_DIR) -> Template:
    """The template `deploy/cloudformation/<name>.yaml` as a dict in long form."""
    return loads((directory / f"{name}.yaml").read_text(encoding="utf-8"))


def body(template: Template) -> str:
    """The TemplateBody sent to CloudFormation (same template, same text; template order)."""
    return json.dumps(template, separators=(",", ":"))


def names(directory: Path = TEMPLATES_DIR) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.yaml"))
