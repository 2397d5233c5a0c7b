"""``archc schema``: the JSON Schema of the spec language, checked with the jsonschema package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml"))
HEAD = "name: t\ninput: {height: 8, width: 8, channels: 3}\n"


@pytest.fixture(scope="module")
def schema() -> dict:
    from archc.spec import json_schema

    return json_schema()


@pytest.fixture(scope="module")
def validator(schema):
    jsonschema = pytest.importorskip("jsonschema")
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def errors(validator, data) -> list[str]:
    return [e.message for e in validator.iter_errors(data)]


def test_schema_command_prints_the_schema(cli, schema):
    res = cli("schema")
    assert res.code == 0 and res.err == ""
    printed = json.loads(res.out)
    assert printed == json.loads(json.dumps(schema))
    assert printed["$schema"].startswith("https://json-schema.org/")
    assert {"name", "input", "params", "network", "top", "heads", "extends"} <= set(printed["properties"])


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_every_spec_validates(validator, path):
    assert errors(validator, yaml.safe_load(path.read_text())) == []


def test_unknown_top_level_key_is_rejected(validator):
    data = yaml.safe_load((ROOT / "specs" / "densenet121.yaml").read_text())
    assert errors(validator, data) == []
    data["netwrk"] = data.pop("network")
    assert errors(validator, data)
    partial = {"extends": "densenet121.yaml", "name": "v", "parms": {"growth_rate": 48}}
    assert any("parms" in m for m in errors(validator, partial))


def test_partial_variant_is_accepted_but_a_full_spec_needs_its_keys(validator):
    assert errors(validator, {"extends": "base.yaml", "params": {"alpha": 0.5}}) == []
    assert errors(validator, {"name": "t", "params": {"alpha": 0.5}})  # no input, no network, no extends


@pytest.mark.parametrize(
    "item",
    [
        {"conv": {"out": 3, "kernal": 1}},  # misspelt attribute of a primitive
        {"conv": {"out": 3, "kernel": "abc"}},  # a string that is no expression
        {"conv": {"out": 3}},  # kernel missing
        {"relu": {"name": "bad-name"}},
        {"conv": {"out": 3, "kernel": 1}, "relu": None},  # two kinds in one item
    ],
    ids=["unknown_attr", "bad_type", "missing_attr", "bad_name", "two_keys"],
)
def test_schema_rejects_what_archc_rejects(validator, cli, write_yaml, item):
    data = yaml.safe_load(HEAD + "network: []\n")
    data["network"] = [item]
    assert errors(validator, data)
    assert cli("check", write_yaml(yaml.safe_dump(data))).code == 2


SHORTHANDS = """\
blocks:
  act:
    body:
      - relu
network:
  - relu
  - relu:
  - act
  - seq: [relu, relu]
  - concat: [[relu], [relu]]
  - add:
      - [relu]
      - [relu]
  - conv_bn_act: {out: 4, kernel: 1, if: true, name: cba}
  - conv: {out: 4, kernel: [1, 1], padding: [0, 0, 0, 0], if: '${1 > 0}'}
"""


def test_schema_accepts_the_yaml_shorthands(validator, cli, write_yaml):
    text = HEAD + SHORTHANDS
    assert cli("check", write_yaml(text)).code == 0
    assert errors(validator, yaml.safe_load(text)) == []


def test_schema_accepts_a_block_call_without_arguments(validator, cli, write_yaml):
    text = HEAD + "blocks:\n  act:\n    body: [relu]\nnetwork:\n  - act:\n"
    assert cli("check", write_yaml(text)).code == 0
    assert errors(validator, yaml.safe_load(text)) == []


def test_top_takes_items_as_network_does(validator, cli, write_yaml):
    text = HEAD + "network: [relu]\ntop:\n  - gap\n  - dense: {out: 10}\n"
    assert cli("check", write_yaml(text)).code == 0
    assert errors(validator, yaml.safe_load(text)) == []
    bad = HEAD + "network: [relu]\ntop:\n  - dense: {outs: 10}\n"
    assert errors(validator, yaml.safe_load(bad))
    assert cli("check", write_yaml(bad)).code == 2
