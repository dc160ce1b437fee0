#!/usr/bin/env python3
"""deploy/k8s.yaml is valid YAML holding a Deployment and a Service that fit
together: the Service selects the Deployment's pods and targets a port the
container exposes; the container is `tern serve` with a readiness probe on
/health. (No cluster here: this checks the file, not a rollout.)

usage: k8s_yaml_test.py deploy/k8s.yaml
"""
import sys

import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = {d["kind"]: d for d in docs}
errors = []


def check(cond, what):
    if not cond:
        errors.append(what)


check(sorted(kinds) == ["Deployment", "Service"], f"kinds: {sorted(kinds)}")
dep, svc = kinds.get("Deployment", {}), kinds.get("Service", {})
check(dep.get("apiVersion") == "apps/v1", "Deployment apiVersion apps/v1")
check(svc.get("apiVersion") == "v1", "Service apiVersion v1")
spec = dep.get("spec", {})
labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
check(spec.get("selector", {}).get("matchLabels", {}).items() <= labels.items(),
      "Deployment selector matches its pod labels")
check(svc.get("spec", {}).get("selector", {}).items() <= labels.items() and
      svc["spec"]["selector"], "Service selects the Deployment's pods")
containers = spec.get("template", {}).get("spec", {}).get("containers", [])
check(len(containers) == 1, "one container")
c = containers[0] if containers else {}
check(c.get("args", [None])[0] == "serve", "the container runs `tern serve`")
check("--host" in c.get("args", []), "binds beyond loopback (--host)")
port_names = {p.get("name") for p in c.get("ports", [])} | \
    {p.get("containerPort") for p in c.get("ports", [])}
probe = c.get("readinessProbe", {}).get("httpGet", {})
check(probe.get("path") == "/health", "readiness probe on /health")
check(probe.get("port") in port_names, "readiness probe port is a container port")
for p in svc.get("spec", {}).get("ports", []):
    check(p.get("targetPort") in port_names, f"Service targetPort {p.get('targetPort')} exists")
if errors:
    print("\n".join("FAIL: " + e for e in errors))
    sys.exit(1)
print("k8s.yaml: Deployment + Service OK")
