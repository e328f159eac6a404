#!/usr/bin/env python3
"""Validates rendered GKE manifests (scripts/gke/render) and prints what the tests check against
the real binary, as one JSON document.

    check.py RENDERED_DIR KEDA_CRD_DIR [KUBERNETES_VERSION=1.34.0]

Validation, offline: Kubernetes kinds with kubernetes-validate (the pinned version's schemas,
strict: unknown fields are errors); KEDA kinds against the openAPIV3Schema of the CRD in
KEDA_CRD_DIR (jsonschema, plus unknown fields, which a structural schema would silently prune);
other custom kinds (GKE's PodMonitoring) are listed with no schema. The facts: every container
(its command and flags, probes, mounts, GPU requests), the pod's volumes and tolerations, and
every KEDA trigger (type, query, metric names in it).
"""
import glob
import json
import os
import re
import sys

import jsonschema
import kubernetes_validate
import yaml


def keda_schemas(crd_dir):
    schemas = {}
    for path in glob.glob(os.path.join(crd_dir, "*.yaml")):
        crd = yaml.safe_load(open(path))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            schemas[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]
    return schemas


def unknown_fields(schema, value, path):
    """Fields the schema does not declare (structural schemas prune them: a typo goes unnoticed)."""
    out = []
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if props is not None and k in props:
                out += unknown_fields(props[k], v, f"{path}.{k}")
            elif isinstance(extra, dict):
                out += unknown_fields(extra, v, f"{path}.{k}")
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields") and extra is not True:
                if path == "" and k in ("apiVersion", "kind", "metadata", "status"):
                    continue
                out.append(f"{path}.{k}: unknown field")
    elif isinstance(value, list) and schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            out += unknown_fields(schema["items"], v, f"{path}[{i}]")
    return out


def pod_spec(doc):
    spec = doc.get("spec", {})
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return spec.get("template", {}).get("spec")
    if doc["kind"] == "Pod":
        return spec
    return None


def probe_path(p):
    return (p or {}).get("httpGet", {}).get("path")


def main():
    rendered, crd_dir = sys.argv[1], sys.argv[2]
    version = sys.argv[3] if len(sys.argv) > 3 else "1.34.0"
    keda = keda_schemas(crd_dir)
    result = {"kubernetes_version": version, "documents": [], "containers": [], "triggers": []}
    for path in sorted(glob.glob(os.path.join(rendered, "**", "*.yaml"), recursive=True)):
        rel = os.path.relpath(path, rendered)
        try:
            docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
        except yaml.YAMLError as e:
            result["documents"].append({"file": rel, "kind": None, "validated_by": None, "errors": [f"YAML: {e}"]})
            continue
        for doc in docs:
            entry = {"file": rel, "kind": doc.get("kind"), "name": doc.get("metadata", {}).get("name"), "errors": []}
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key in keda:
                entry["validated_by"] = "KEDA CRD " + "/".join(key)
                v = jsonschema.Draft7Validator(keda[key])
                entry["errors"] += [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(doc)]
                entry["errors"] += unknown_fields(keda[key], doc, "")
            else:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                    entry["validated_by"] = f"kubernetes {version}"
                except kubernetes_validate.SchemaNotFoundError:
                    entry["validated_by"] = None
                except kubernetes_validate.ValidationError as e:
                    entry["validated_by"] = f"kubernetes {version}"
                    entry["errors"].append(f"{'.'.join(map(str, e.path))}: {e.message}")
            result["documents"].append(entry)

            spec = pod_spec(doc)
            if spec is not None:
                volumes = {v["name"]: v for v in spec.get("volumes", [])}
                for c in spec.get("initContainers", []) + spec.get("containers", []):
                    limits = c.get("resources", {}).get("limits", {})
                    result["containers"].append({
                        "file": rel, "workload": doc["metadata"]["name"], "name": c["name"], "image": c.get("image"),
                        "command": c.get("command"), "args": c.get("args", []),
                        "probes": {k: probe_path(c.get(k)) for k in ("startupProbe", "livenessProbe", "readinessProbe") if c.get(k)},
                        "mounts": {m["mountPath"]: volumes.get(m["name"]) for m in c.get("volumeMounts", [])},
                        "gpu": "nvidia.com/gpu" in limits,
                        "tolerations": spec.get("tolerations", []),
                        "termination_grace": spec.get("terminationGracePeriodSeconds"),
                    })
            if doc.get("kind") == "ScaledObject":
                for t in doc["spec"].get("triggers", []):
                    q = t.get("metadata", {}).get("query")
                    metrics = sorted(set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{|\[|\))", q))) if q else []
                    result["triggers"].append({"file": rel, "type": t["type"], "name": t.get("name"), "query": q,
                                               "metrics": [m for m in metrics if m not in ("sum", "rate", "max", "avg", "by")],
                                               "metadata": t.get("metadata", {})})
    json.dump(result, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
