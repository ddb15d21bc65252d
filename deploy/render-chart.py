"""Render deploy/helm/csi-os without helm, for offline validation in CI.

helm cannot be installed on the CI machines (no Go toolchain, no registry
that ships it), so this renders the chart for `deploy/validate`. It is not
a Helm implementation: it supports exactly the template constructs the
chart uses and refuses any other, so the chart cannot grow a construct
this renderer would get wrong:

- `{{ .Values.a.b }}`: the value from values.yaml (with `--set a.b=v`
  overrides), printed as Go's `%v` prints strings, numbers and booleans;
- `{{ .Release.Namespace }}`, `{{ .Release.Name }}`;
- `| quote`: the value in double quotes, with `\\` and `"` escaped.

Usage: python3 render-chart.py CHART_DIR NAMESPACE [key.path=value ...]
Prints the rendered templates as one multi-document YAML stream.
"""

import os
import re
import sys

import yaml  # PyYAML, a dependency of kubernetes-validate

EXPR = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
TERM = re.compile(r"^(\.Values(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.Release\.(?:Namespace|Name))(\s*\|\s*quote)?$")


def lookup(values, dotted):
    node = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise SystemExit(f"render-chart: .Values.{dotted} is not in values.yaml")
        node = node[part]
    if isinstance(node, (dict, list)):
        raise SystemExit(f"render-chart: .Values.{dotted} is not a scalar")
    return node


def go_string(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def render(text, values, release, path):
    def sub(m):
        expr = m.group(1)
        t = TERM.match(expr)
        if not t:
            raise SystemExit(f"render-chart: {path}: unsupported template construct {{{{ {expr} }}}}")
        ref, quote = t.group(1), t.group(2)
        if ref.startswith(".Values."):
            value = go_string(lookup(values, ref[len(".Values."):]))
        else:
            value = release[ref.split(".")[-1]]
        if quote:
            value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return value

    return EXPR.sub(sub, text)


def main():
    chart, namespace, *sets = sys.argv[1:]
    with open(os.path.join(chart, "values.yaml")) as f:
        values = yaml.safe_load(f) or {}
    for s in sets:
        key, _, val = s.partition("=")
        node = values
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = val
    release = {"Namespace": namespace, "Name": "csi-os"}
    tdir = os.path.join(chart, "templates")
    docs = []
    for name in sorted(os.listdir(tdir)):
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(tdir, name)
        with open(path) as f:
            out = render(f.read(), values, release, path)
        # The output must be YAML, as helm's would be.
        list(yaml.safe_load_all(out))
        docs.append(f"---\n# Source: csi-os/templates/{name}\n{out.strip()}\n")
    sys.stdout.write("".join(docs))


if __name__ == "__main__":
    main()
