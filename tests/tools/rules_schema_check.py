#!/usr/bin/env python3
"""Checks rules/schema.json against the rule files: every shipped pack and the
property-test pack validate; every invalid fixture whose errors are about shape
(keys, types, values) fails to validate. usage: rules_schema_check.py SOURCE_DIR
Exit 0 ok, 1 a check failed, 77 (skip) when python3-yaml or python3-jsonschema
are missing."""
import glob
import json
import os
import re
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:  # pragma: no cover
    print("skipped: %s" % e)
    sys.exit(77)

root = sys.argv[1]
schema = json.load(open(os.path.join(root, "rules/schema.json"), encoding="utf-8"))
jsonschema.Draft7Validator.check_schema(schema)
validator = jsonschema.Draft7Validator(schema)


class Loader(yaml.SafeLoader):
    """YAML as Customs reads it: dates stay strings, only true/false are booleans."""


Loader.yaml_implicit_resolvers = {
    k: [(t, r) for t, r in v if t not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))

failed = False
valid = sorted(glob.glob(os.path.join(root, "rules/*.yaml"))) + sorted(
    glob.glob(os.path.join(root, "tests/policy/data/property/*.yaml")))
for f in valid:
    errors = list(validator.iter_errors(yaml.load(open(f, encoding="utf-8"), Loader=Loader)))
    for e in errors:
        print("%s: %s: %s" % (f, "/".join(map(str, e.path)), e.message))
    failed |= bool(errors)
# Fixtures of shape errors the schema must catch too.
for name in ("keys.yaml", "structure.yaml", "schema.yaml"):
    f = os.path.join(root, "tests/policy/data/invalid", name)
    if not list(validator.iter_errors(yaml.load(open(f, encoding="utf-8"), Loader=Loader))):
        print("%s: the schema accepts it" % f)
        failed = True
print("schema check: %d valid files, %s" % (len(valid), "FAILED" if failed else "ok"))
sys.exit(1 if failed else 0)
