#!/usr/bin/env bash
# The deployment files, checked offline (ctest deploy_manifests; no cluster, no daemon):
#   yamllint            every YAML file under deploy/ (.yamllint.yaml)
#   docker-compose      deploy/compose.yaml and compose.replicas.yaml parse and resolve
#   promtool            the compose deployment's Prometheus configuration
#   kubectl kustomize   deploy/k8s/base and each overlay render
#   tools/k8s           each rendering validates against the Kubernetes OpenAPI schemas,
#                       unknown fields included (kubernetes-models, TypeScript; npm ci once)
#   Grafana             deploy/grafana/*.json parse, and every panel has a PromQL query
# Exit 77 (skipped) when kubectl is missing: Debian 12 does not package it.
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$src"
echo "yamllint:"; yamllint -c .yamllint.yaml deploy/
echo "compose:"
for f in deploy/compose.yaml deploy/compose.replicas.yaml; do
  docker-compose -f "$f" config -q && echo "  $f ok"
done
echo "prometheus:"; promtool check config deploy/compose/prometheus/prometheus.yml | sed 's/^/  /'
if ! command -v kubectl >/dev/null; then
  echo "kubectl is not installed: the Kubernetes manifests were not rendered (skipped)"; exit 77
fi
# Installed once per lock file (a checkout whose lock file moved on installs again).
if ! cmp -s tools/k8s/package-lock.json tools/k8s/node_modules/.installed-lock; then
  (cd tools/k8s && npm ci --no-audit --no-fund --silent && cp package-lock.json node_modules/.installed-lock)
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for k in deploy/k8s/base deploy/k8s/overlays/*/; do
  name=$(basename "$k")
  kubectl kustomize "$k" > "$out/$name.yaml"
  printf 'kubernetes %-12s ' "$name:"
  node tools/k8s/validate.mjs < "$out/$name.yaml"
done
echo "grafana:"
/usr/bin/python3 - deploy/grafana/*.json <<'PY'
import json, sys
for path in sys.argv[1:]:
    d = json.load(open(path))
    panels = d["panels"]
    bad = [p["title"] for p in panels if not all(t.get("expr") for t in p.get("targets", [])) or not p.get("targets")]
    assert not bad, f"{path}: panels without a query: {bad}"
    assert d.get("uid"), f"{path}: no uid (the provisioned dashboard's address)"
    print(f"  {path}: {len(panels)} panels")
PY
