#!/usr/bin/env python3
"""Keeps config/grafana/customs-dashboard.json true to what customsd exports.

    grafana_dashboard_check.py SOURCE_DIR [--dashboard FILE] [--metrics FILE] [--self-test]

Checks that the dashboard has the shape Grafana imports (uid, title, panels
with grid positions and targets, the ${DS_PROMETHEUS} datasource input), then
reads every PromQL expression in it (panel targets, annotations, the template
variables' label_values queries) and checks:

  - every metric name is one customsd exports: the names are read from the
    daemon's source (daemon/**/*.cpp: write_metric_header/header calls, the
    counter families, the edge families and the name tables the render loops
    walk); a _bucket, _sum or _count suffix is only allowed on a histogram;
  - every metric is documented in docs/operator-guide.md, and every label the
    expression uses (matchers, by/without/on/ignoring clauses, label_values,
    legend {{label}}) is a label the guide lists for one of its metrics (or
    instance/job, which Prometheus adds, or le on a _bucket series);
  - every function is a PromQL function; every $variable is a template
    variable or one of Grafana's own;
  - the panels the dashboard is for are there (REQUIRED: flows by pair,
    verdicts, findings, hold-back and audit latency histograms, failed flows,
    audit refusals, tokens, reloads).

As a guard against this parser going stale, every metric name the source
writes a sample of (sample/write_sample/write_gauge_value/write_histogram)
must have been found as a registered metric.

--metrics FILE (a scrape of a running customsd's /metrics, e.g.
`curl -s http://127.0.0.1:9090/metrics > FILE`) also checks the source parser
against it: every metric the scrape declares must have been found in the
source with the same type, and every label its series carry must be
documented.

--self-test breaks the dashboard in memory in several ways (an unknown
metric, a _bucket on a counter, an unknown label, a misspelt function, a
missing datasource input, a required panel gone), and renames a metric in a
copy of daemon/, and fails unless each break is reported.

Exit codes: 0 ok, 1 the dashboard is wrong, 2 usage or I/O error.
"""

import copy
import json
import os
import re
import shutil
import sys
import tempfile

DEFAULT_DASHBOARD = os.path.join("config", "grafana", "customs-dashboard.json")

# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = {"instance", "job"}
HIST_SUFFIXES = ("_bucket", "_sum", "_count")

# What the dashboard is for (issue 13): a panel losing one of these fails.
REQUIRED = {
    "customs_flow_pairs_total": "flows by jurisdiction pair",
    "customs_enforced_flows_total": "verdicts",
    "customs_findings_total": "findings by detector",
    "customs_hold_back_seconds_bucket": "the hold-back latency histogram",
    "customs_audit_durable_wait_seconds_bucket": "the audit latency histogram",
    "customs_flow_failures_total": "failed flows",
    "customs_audit_refusals_total": "audit refusals",
    "customs_tokens_total": "tokens by jurisdiction pair",
    "customs_reloads_total": "reloads",
}

PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor",
    "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
    "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate",
    "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sort_by_label", "sort_by_label_desc",
    "sqrt", "time", "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time",
    "sum_over_time", "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time",
    "last_over_time", "present_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos",
    "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad", "pi",
}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OTHER_KEYWORDS = {"bool", "and", "or", "unless", "offset", "atan2", "inf", "nan"}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s",
                     "__range_ms", "__from", "__to", "__dashboard", "__org", "__user"}


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, what):
        self.items.append(f"{where}: {what}")


# ---------------------------------------------------------------- the source

def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def exported_metrics(source_dir):
    """{name: type} of the metrics customsd registers, read from daemon/."""
    metrics = {}
    sampled = set()
    files = []
    for root, _, names in os.walk(os.path.join(source_dir, "daemon")):
        files += [os.path.join(root, n) for n in names if n.endswith(".cpp")]
    string = r'"(?:[^"\\]|\\.)*"'
    for path in sorted(files):
        with open(path, encoding="utf-8") as f:
            text = strip_comments(f.read())
        # header(out, "name", "type", ...) / write_metric_header(out, "name", "type", ...)
        for m in re.finditer(r'\b(?:write_metric_header|header)\(\s*out,\s*"(customs_\w+)",\s*"(\w+)"', text):
            metrics[m.group(1)] = m.group(2)
        # counter families: member("name", "help" ["more help"], {"label", ...}, workers)
        for m in re.finditer(r'\b\w+\(\s*"(customs_\w+)",\s*(?:' + string + r'\s*)+,\s*\{[^}]*\}', text):
            metrics[m.group(1)] = "counter"
        # edge families: family(out, shards_, "name", "help", "label", names, ...)
        for m in re.finditer(r'\bfamily\(\s*out,\s*\w+,\s*"(customs_\w+)"', text):
            metrics[m.group(1)] = "counter"
        # for (const auto& h : table) { header(out, h.name, "type", ...) }, table[] = {{"name", ...}, ...};
        for m in re.finditer(r'for\s*\(\s*const\s+auto&\s+(\w+)\s*:\s*(\w+)\s*\)\s*\{', text):
            var, table = m.group(1), m.group(2)
            body = text[m.end():m.end() + 400]
            h = re.search(r'\b(?:write_metric_header|header)\(\s*out,\s*' + var + r'\.name,\s*"(\w+)"', body)
            if not h:
                continue
            t = re.search(r'\b' + table + r'\[\]\s*=\s*\{(.*?)\n\s*\};', text, flags=re.S)
            if not t:
                continue
            for n in re.finditer(r'\{\s*"(customs_\w+)"', t.group(1)):
                metrics[n.group(1)] = h.group(1)
        for m in re.finditer(r'\b(?:sample|write_sample|write_gauge_value|write_histogram)\(\s*out,\s*"(customs_\w+)"',
                             text):
            sampled.add(m.group(1))
    return metrics, sampled


def documented_metrics(source_dir):
    """{name: set of labels} of the metrics docs/operator-guide.md names."""
    path = os.path.join(source_dir, "docs", "operator-guide.md")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    doc = {}
    for line in lines:
        cells = line.split("|") if line.lstrip().startswith("|") else [line]
        for cell in cells:
            mentions = []
            for span in re.findall(r"`([^`]*)`", cell):
                for m in re.finditer(r"\b(customs_\w+)(\{[^}]*\})?", span):
                    labels = set()
                    if m.group(2):
                        for part in m.group(2)[1:-1].split(","):
                            name = part.split("=")[0].strip()
                            if re.fullmatch(r"[A-Za-z_]\w*", name):
                                labels.add(name)
                    mentions.append((m.group(1), labels, m.group(2) is not None))
            # In a table cell, `a`, `b{route}` means both have the labels
            # (the guide's convention); in prose each mention stands alone.
            shared = set()
            if len(cells) > 1:
                for _, labels, _ in mentions:
                    shared |= labels
            for name, labels, _ in mentions:
                doc.setdefault(name, set()).update(labels | shared)
    return doc


# ---------------------------------------------------------------- PromQL

TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<var>\$\{?\w+\}?)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[smhdwy]?)
  | (?P<ident>[A-Za-z_:][\w:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){},])
""", re.X)


def tokenize(expr):
    pos, out = 0, []
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read {expr[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def parse_promql(expr):
    """(metrics [(name, {labels in matchers})], grouping labels, functions, variables)."""
    toks = tokenize(expr)
    metrics, grouping, functions, variables = [], set(), set(), set()
    for kind, text in toks:
        if kind == "var":
            variables.add(text.strip("${}"))
        elif kind in ("str", "range"):
            variables.update(re.findall(r"\$\{?(\w+)", text))
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident" and text in LABEL_LIST_KEYWORDS:
            if nxt == "(":
                j = i + 2
                while j < len(toks) and toks[j][1] != ")":
                    if toks[j][0] == "ident":
                        grouping.add(toks[j][1])
                    j += 1
                i = j + 1
                continue
        elif kind == "ident" and nxt == "(":
            functions.add(text)
        elif kind == "ident" and text not in OTHER_KEYWORDS and text not in AGGREGATIONS:
            labels = set()
            if nxt == "{":
                j = i + 2
                while j < len(toks) and toks[j][1] != "}":
                    if toks[j][0] == "ident" and j + 1 < len(toks) and toks[j + 1][1] in ("=", "!=", "=~", "!~"):
                        labels.add(toks[j][1])
                    j += 1
                i = j
            metrics.append((text, labels))
        elif text == "{":
            raise ValueError("a selector without a metric name")
        i += 1
    return metrics, grouping, functions, variables


# ---------------------------------------------------------------- the dashboard

def check_shape(d, p):
    if not isinstance(d, dict):
        p.add("dashboard", "not a JSON object")
        return
    for key in ("uid", "title"):
        if not isinstance(d.get(key), str) or not d[key].strip():
            p.add("dashboard", f"no {key}")
    if not isinstance(d.get("schemaVersion"), int):
        p.add("dashboard", "no integer schemaVersion")
    inputs = {i.get("name"): i for i in d.get("__inputs", []) if isinstance(i, dict)}
    ds = inputs.get("DS_PROMETHEUS")
    if not ds or ds.get("type") != "datasource" or ds.get("pluginId") != "prometheus":
        p.add("__inputs", "no DS_PROMETHEUS datasource input of plugin prometheus")
    # Every ${NAME} of the import must be declared in __inputs (else Grafana
    # imports it as a literal and the panels have no data source).
    text = json.dumps(d)
    for name in sorted(set(re.findall(r"\$\{(DS_\w+)\}", text))):
        if name not in inputs:
            p.add("__inputs", f"${{{name}}} is used but not declared")
    panels = d.get("panels")
    if not isinstance(panels, list) or not panels:
        p.add("dashboard", "no panels")
        return
    ids = set()
    all_panels = []
    for panel in panels:
        all_panels.append(panel)
        all_panels += panel.get("panels", []) if isinstance(panel, dict) else []
    for n, panel in enumerate(all_panels):
        where = f"panel {panel.get('id', n)} {panel.get('title', '')!r}" if isinstance(panel, dict) else f"panel #{n}"
        if not isinstance(panel, dict):
            p.add(where, "not an object")
            continue
        if not isinstance(panel.get("id"), int) or panel["id"] in ids:
            p.add(where, "no unique integer id")
        ids.add(panel.get("id"))
        if not panel.get("type") or not panel.get("title"):
            p.add(where, "no type or title")
        g = panel.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in ("h", "w", "x", "y")) or g.get("x", 0) + g.get("w", 0) > 24:
            p.add(where, f"bad gridPos {g}")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets")
        if not isinstance(targets, list) or not targets:
            p.add(where, "no targets")
            continue
        refs = set()
        for t in targets:
            if not isinstance(t, dict) or not isinstance(t.get("expr"), str) or not t["expr"].strip():
                p.add(where, "a target without expr")
                continue
            if t.get("refId") in refs or not t.get("refId"):
                p.add(where, f"refId {t.get('refId')!r} missing or repeated")
            refs.add(t.get("refId"))
        for holder in [panel] + targets:
            dsref = holder.get("datasource") if isinstance(holder, dict) else None
            if not isinstance(dsref, dict) or dsref.get("uid") != "${DS_PROMETHEUS}":
                p.add(where, "datasource is not {uid: ${DS_PROMETHEUS}}")
                break


def expressions(d):
    """(where, expr, legendFormat, kind) for every PromQL expression in the dashboard."""
    out = []

    def walk(node, where):
        if isinstance(node, dict):
            if "title" in node and isinstance(node.get("id"), int):
                where = f"panel {node['id']} {node['title']!r}"
            if isinstance(node.get("expr"), str):
                out.append((where, node["expr"], node.get("legendFormat", ""), "expr"))
            for k, v in node.items():
                if k != "templating":
                    walk(v, where)
        elif isinstance(node, list):
            for v in node:
                walk(v, where)

    walk({k: v for k, v in d.items() if k != "templating"}, "dashboard")
    for a in d.get("annotations", {}).get("list", []):
        if isinstance(a.get("titleFormat"), str):
            out.append((f"annotation {a.get('name')!r}", None, a["titleFormat"] + a.get("textFormat", ""), "legend"))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") == "query" and isinstance(q, str):
            out.append((f"variable {v.get('name')!r}", q, "", "variable"))
    return out


def check_expressions(d, exported, doc, p):
    variables = {v.get("name") for v in d.get("templating", {}).get("list", [])} | GRAFANA_VARIABLES
    used = set()
    for _, expr, _, kind in expressions(d):
        if expr is not None and kind == "expr":
            try:
                used |= {name for name, _ in parse_promql(expr)[0]}
            except ValueError:
                pass
    for name, what in sorted(REQUIRED.items()):
        if name not in used:
            p.add("dashboard", f"no panel queries {name} ({what})")
    for where, expr, legend, kind in expressions(d):
        used_labels = set()
        known_labels = set(TARGET_LABELS)
        if expr is not None:
            extra_label = None
            if kind == "variable":
                m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", expr)
                if not m:
                    p.add(where, f"not a label_values(metric, label) query: {expr}")
                    continue
                expr, extra_label = m.group(1), m.group(2)
            try:
                metrics, grouping, functions, vars_ = parse_promql(expr)
            except ValueError as e:
                p.add(where, f"{e} in {expr}")
                continue
            if not metrics:
                p.add(where, f"no metric in {expr}")
            for f in sorted(functions - PROMQL_FUNCTIONS - AGGREGATIONS):
                p.add(where, f"{f}() is not a PromQL function")
            for v in sorted(vars_ - variables):
                p.add(where, f"${v} is not a template variable")
            used_labels |= grouping
            if extra_label:
                used_labels.add(extra_label)
            for name, labels in metrics:
                base = name
                for suffix in HIST_SUFFIXES:
                    if name.endswith(suffix) and name[: -len(suffix)] in exported:
                        base = name[: -len(suffix)]
                        if exported[base] != "histogram":
                            p.add(where, f"{name}: {base} is a {exported[base]}, not a histogram")
                        if suffix == "_bucket":
                            known_labels.add("le")
                if base not in exported:
                    p.add(where, f"{name} is not a metric customsd exports")
                    continue
                if base == name and exported[base] == "histogram":
                    p.add(where, f"{name} is a histogram: use {name}_bucket, _sum or _count")
                if base not in doc:
                    p.add(where, f"{base} is not documented in docs/operator-guide.md")
                    continue
                known_labels |= doc[base]
                own = doc[base] | TARGET_LABELS | ({"le"} if name.endswith("_bucket") and base != name else set())
                for label in sorted(labels - own):
                    p.add(where, f"label {label!r} is not a label of {name} (docs/operator-guide.md)")
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend or ""):
            used_labels.add(label)
        if expr is None:
            continue
        for label in sorted(used_labels - known_labels):
            p.add(where, f"label {label!r} is not a label of {', '.join(sorted({m for m, _ in metrics}))}"
                         " (docs/operator-guide.md)")


def check(d, source_dir):
    p = Problems()
    exported, sampled = exported_metrics(source_dir)
    for name in sorted(sampled - set(exported)):
        p.add("daemon source", f"{name} is written but this checker did not find where it is registered: "
                               "teach exported_metrics() the new pattern")
    if len(exported) < 20:
        p.add("daemon source", f"only {len(exported)} metrics found: the source parser is out of date")
    doc = documented_metrics(source_dir)
    check_shape(d, p)
    if not p.items or all(not i.startswith("daemon source") for i in p.items):
        check_expressions(d, exported, doc, p)
    return p.items, exported


def check_scrape(path, exported, doc):
    p = Problems()
    types, labels = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split()[:4]
                types[name] = kind
            elif line.strip() and not line.startswith("#"):
                m = re.match(r"([A-Za-z_:][\w:]*)(\{(.*)\})?\s", line)
                if m:
                    labels.setdefault(m.group(1), set()).update(re.findall(r'(\w+)="', m.group(3) or ""))
    if not types:
        p.add(path, "no # TYPE lines: not a Prometheus text scrape")
    for name, kind in sorted(types.items()):
        if name.startswith("customs_") and exported.get(name) != kind:
            p.add(path, f"{name} ({kind}) is exported, but the source parser found {exported.get(name)}")
    for name, ls in sorted(labels.items()):
        base = name
        for suffix in HIST_SUFFIXES:
            if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
                base = name[: -len(suffix)]
        if not base.startswith("customs_"):
            continue
        for label in sorted(ls - doc.get(base, set()) - {"le"}):
            p.add(path, f"{name} has label {label!r}, which docs/operator-guide.md does not list")
    return p.items


def self_test(d, source_dir):
    """Each break must be reported; returns the breaks that were not."""
    def first_target(dd):
        for panel in dd["panels"]:
            if panel.get("targets"):
                return panel["targets"][0]
        raise AssertionError("no target")

    def set_expr(expr):
        def f(dd):
            first_target(dd)["expr"] = expr
        return f

    def drop_inputs(dd):
        dd["__inputs"] = []

    def drop_metric(name):
        def f(dd):
            for panel in dd["panels"]:
                panel["targets"] = [t for t in panel.get("targets", []) if name not in t.get("expr", "")]
                if "targets" in panel and not panel["targets"] and panel.get("type") != "row":
                    panel["targets"] = [{"expr": "customs_ready", "refId": "A",
                                         "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}}]
        return f

    # name: (the break, words the report must contain)
    breaks = {
        "unknown metric": (set_expr('sum(rate(customs_no_such_metric_total[5m]))'),
                           "customs_no_such_metric_total is not a metric"),
        "misspelt metric": (set_expr('sum(rate(customs_flow_pair_total[5m]))'),
                            "customs_flow_pair_total is not a metric"),
        "_bucket on a counter": (set_expr('histogram_quantile(0.9, sum by (le) (rate(customs_findings_total_bucket[5m])))'),
                                 "not a histogram"),
        "histogram without suffix": (set_expr('rate(customs_hold_back_seconds[5m])'), "is a histogram: use"),
        "unknown label in a matcher": (set_expr('sum(rate(customs_flow_pairs_total{country="DE"}[5m]))'),
                                       "label 'country'"),
        "unknown label in by()": (set_expr('sum by (jurisdiction) (rate(customs_flow_pairs_total[5m]))'),
                                  "label 'jurisdiction'"),
        "misspelt function": (set_expr('histogram_quantle(0.9, sum by (le) (rate(customs_hold_back_seconds_bucket[5m])))'),
                              "histogram_quantle() is not a PromQL function"),
        "unknown variable": (set_expr('sum(rate(customs_flow_pairs_total{instance=~"$host"}[5m]))'),
                             "$host is not a template variable"),
        "no datasource input": (drop_inputs, "no DS_PROMETHEUS datasource input"),
        "label of another metric in a matcher": (set_expr(
            'sum(rate(customs_flow_pairs_total[5m])) + sum(rate(customs_findings_total{src="CN"}[5m]))'),
            "label 'src' is not a label of customs_findings_total"),
        "a required panel gone": (drop_metric("customs_hold_back_seconds_bucket"),
                                  "no panel queries customs_hold_back_seconds_bucket"),
    }
    missed = []
    for name, (brk, words) in breaks.items():
        dd = copy.deepcopy(d)
        brk(dd)
        problems, _ = check(dd, source_dir)
        hits = [item for item in problems if words in item]
        if not hits:
            missed.append(name)
        else:
            print(f"self-test: {name}: caught ({hits[0]})")
    # A metric renamed in the daemon's source (in a copy of daemon/ and docs/).
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.join(source_dir, "daemon"), os.path.join(tmp, "daemon"))
        shutil.copytree(os.path.join(source_dir, "docs"), os.path.join(tmp, "docs"))
        renamed = False
        for root, _, names in os.walk(os.path.join(tmp, "daemon")):
            for n in names:
                path = os.path.join(root, n)
                with open(path, encoding="utf-8", errors="surrogateescape") as f:
                    text = f.read()
                if '"customs_flow_pairs_total"' in text:
                    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                        f.write(text.replace('"customs_flow_pairs_total"', '"customs_flow_pair_counts_total"'))
                    renamed = True
        problems, _ = check(d, tmp)
        hits = [item for item in problems if "customs_flow_pairs_total is not a metric" in item]
        if not renamed or not hits:
            missed.append("a metric renamed in daemon/")
        else:
            print(f"self-test: a metric renamed in daemon/: caught ({hits[0]})")
    return missed


def main(argv):
    args = list(argv[1:])
    self_testing = "--self-test" in args
    if self_testing:
        args.remove("--self-test")
    usage = "usage: grafana_dashboard_check.py SOURCE_DIR [--dashboard FILE] [--metrics FILE] [--self-test]"
    values = {}
    for opt in ("--dashboard", "--metrics"):
        if opt in args:
            i = args.index(opt)
            if i + 1 >= len(args):
                print(usage, file=sys.stderr)
                return 2
            values[opt] = args[i + 1]
            del args[i:i + 2]
    if len(args) != 1:
        print(usage, file=sys.stderr)
        return 2
    dashboard = values.get("--dashboard")
    source_dir = args[0]
    dashboard = dashboard or os.path.join(source_dir, DEFAULT_DASHBOARD)
    try:
        with open(dashboard, encoding="utf-8") as f:
            d = json.load(f)
    except OSError as e:
        print(f"{dashboard}: {e}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as e:
        print(f"{dashboard}: not JSON: {e}", file=sys.stderr)
        return 1
    problems, exported = check(d, source_dir)
    if "--metrics" in values:
        try:
            problems += check_scrape(values["--metrics"], exported, documented_metrics(source_dir))
        except OSError as e:
            print(f"{values['--metrics']}: {e}", file=sys.stderr)
            return 2
    if problems:
        for item in problems:
            print(f"{dashboard}: {item}", file=sys.stderr)
        return 1
    n = len(expressions(d))
    print(f"{dashboard}: ok ({n} expressions, {len(exported)} metrics exported by customsd)")
    if self_testing:
        missed = self_test(d, source_dir)
        for name in missed:
            print(f"self-test: {name}: NOT caught", file=sys.stderr)
        return 1 if missed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
