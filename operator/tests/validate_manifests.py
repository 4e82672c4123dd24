#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests against the built-in schemas,
offline and strictly (unknown fields are errors), with kubernetes-validate.

    python3 operator/tests/validate_manifests.py [--versions 1.33,1.37] FILE_OR_DIR...

Installs nothing: CI runs `pip install kubernetes-validate==1.37.0` first.
kubernetes-validate only warns about kinds it has no schema for; this script
treats a missing schema as an error for every built-in API group and skips
only custom resources (dynamokv.io). Exit status 0 when every document of
every file is valid for every version, 1 otherwise.
"""

import argparse
import pathlib
import sys

import kubernetes_validate
import yaml

DEFAULT_VERSIONS = ["1.33.0", "1.37.0"]
CUSTOM_GROUPS = ("dynamokv.io/",)


def documents(path):
    with open(path, encoding="utf-8") as handle:
        for index, document in enumerate(yaml.safe_load_all(handle)):
            if document is not None:
                yield index, document


def check(path, versions):
    errors = []
    count = 0
    for index, document in documents(path):
        count += 1
        kind = document.get("kind", "?")
        name = document.get("metadata", {}).get("name", "?")
        where = f"{path} document {index} ({kind} {name})"
        if str(document.get("apiVersion", "")).startswith(CUSTOM_GROUPS):
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError as error:
                errors.append(f"{where}: no schema for Kubernetes {version}: {error}")
            except kubernetes_validate.ValidationError as error:
                at = "/".join(str(part) for part in error.path)
                errors.append(f"{where}: invalid for Kubernetes {version} at {at}: {error.message}")
            except kubernetes_validate.InvalidSchemaError as error:
                errors.append(f"{where}: broken schema for Kubernetes {version}: {error}")
    if count == 0:
        errors.append(f"{path}: no documents")
    return count, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=pathlib.Path)
    parser.add_argument("--versions", default=",".join(DEFAULT_VERSIONS))
    args = parser.parse_args()
    versions = [v if v.count(".") == 2 else v + ".0" for v in args.versions.split(",")]
    files = []
    for path in args.paths:
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    total = 0
    failures = []
    for path in files:
        count, errors = check(path, versions)
        total += count
        failures.extend(errors)
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"{total} documents in {len(files)} files checked against Kubernetes {', '.join(versions)}: "
          f"{len(failures)} errors")
    return 1 if failures or not files else 0


if __name__ == "__main__":
    sys.exit(main())
