"""Checks an Envoy bootstrap (YAML) against Envoy's own message definitions.

Envoy is not installed where rampart is built, so `envoy --mode validate`
cannot run here. What can: parsing the YAML into the
`envoy.config.bootstrap.v3.Bootstrap` message with protobuf's JSON mapping,
every `typed_config` (an `Any`) resolved to its message by its `@type`. A
misspelt field, a wrong type or an unknown enum value anywhere fails, naming
it. Not checked: Envoy's validation rules (required fields, ranges) and
whether a filter's extension is compiled into a given Envoy build.

The definitions are the descriptor set the `envoy-types` crate is generated
from (the crate rampart serves ext_authz with), so the YAML is held to the
same Envoy API version as rampart's wire types.

Usage: check_envoy.py DESCRIPTOR_SET BOOTSTRAP.yaml
"""

import sys

import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


def pool_of(path):
    files = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        files.ParseFromString(f.read())
    by_name = {f.name: f for f in files.file}
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        added.add(name)
        for dep in by_name[name].dependency:
            add(dep)
        pool.Add(by_name[name])

    for name in by_name:
        add(name)
    return pool


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    pool = pool_of(sys.argv[1])
    bootstrap = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("envoy.config.bootstrap.v3.Bootstrap")
    )
    with open(sys.argv[2]) as f:
        doc = yaml.safe_load(f)
    try:
        parsed = json_format.ParseDict(doc, bootstrap(), descriptor_pool=pool)
    except json_format.ParseError as e:
        sys.exit(f"{sys.argv[2]}: not a valid Envoy bootstrap: {e}")
    resources = parsed.static_resources
    print(
        f"{sys.argv[2]}: a valid Envoy v3 bootstrap "
        f"({len(resources.listeners)} listeners, {len(resources.clusters)} clusters)"
    )


if __name__ == "__main__":
    main()
