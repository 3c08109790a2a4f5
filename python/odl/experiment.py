"""Results of `odl experiment --json FILE` as Python objects, and a helper that
runs the tool. Pure Python: no library call is needed here.

The JSON (docs/cli.md): {"seeds": N, "results": [{"scenario", "strategy",
"trainable_params", "planned_bytes", <metric>: [one value per seed], ...}]};
S1 rows carry user/original/sum, S2 rows old/new/all, S3 rows ACC, BWT and
R_mean (the mean accuracy matrix, a list of rows). Values are kept as the
tool writes them (accuracies in percent). Scenario names are the tool's
("S1 (gain drift, 10 per class)"); lookups accept the id alone ("S1", "s1")."""
import json
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional

_FIXED = ("scenario", "strategy", "trainable_params", "planned_bytes")


def _mean(v):
    return sum(v) / len(v) if v else float("nan")


def _std(v):
    if len(v) < 2:
        return 0.0
    m = _mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


@dataclass
class ExperimentRow:
    scenario: str
    strategy: str
    trainable_params: int
    planned_bytes: int
    metrics: Dict[str, List[float]] = field(default_factory=dict)  # per-seed values
    R_mean: Optional[List[List[float]]] = None                    # S3: mean accuracy matrix
    planned: Dict[str, int] = field(default_factory=dict)         # planned bytes per kind (params, grads, ...)
    extra: Dict[str, object] = field(default_factory=dict)        # any other field the tool wrote

    @property
    def scenario_id(self):
        """"S1" for "S1 (gain drift, 10 per class)"."""
        return self.scenario.split()[0].upper() if self.scenario else ""

    def is_scenario(self, name):
        """True for the full name or its id, any case ("s1", "S1", "S1 (gain ...)")."""
        return name.lower() in (self.scenario.lower(), self.scenario_id.lower())

    def mean(self, metric):
        return _mean(self.metrics[metric])

    def std(self, metric):
        """Sample standard deviation over seeds (0 for one seed), as the tool prints."""
        return _std(self.metrics[metric])

    @classmethod
    def from_dict(cls, d):
        skip = _FIXED + ("R_mean", "planned")
        metrics = {k: [float(x) for x in v] for k, v in d.items()
                   if k not in skip and isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)}
        extra = {k: v for k, v in d.items() if k not in skip and k not in metrics}
        planned = {k: int(v) for k, v in (d.get("planned") or {}).items()}
        return cls(str(d["scenario"]), str(d["strategy"]), int(d.get("trainable_params", 0)),
                   int(d.get("planned_bytes", 0)), metrics, d.get("R_mean"), planned, extra)


@dataclass
class ExperimentResults:
    seeds: int
    rows: List[ExperimentRow]
    output: str = ""  # the tool's printed tables (run_experiment)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def scenario(self, name):
        """Rows of one scenario ("S1", "s1", ...)."""
        return [r for r in self.rows if r.is_scenario(name)]

    def find(self, scenario, strategy):
        """The row of `strategy` in `scenario`: its exact name ("replay balanced
        200 int8"), else the first whose name starts with it ("replay")."""
        rows = [r for r in self.rows if r.is_scenario(scenario)]
        for r in rows:
            if r.strategy == strategy:
                return r
        for r in rows:
            if r.strategy.startswith(strategy + " ") or r.strategy.startswith(strategy):
                return r
        raise KeyError("%s/%s: strategies there are %s" % (scenario, strategy, ", ".join(r.strategy for r in rows)))

    def strategies(self, scenario=None):
        return [r.strategy for r in self.rows if scenario is None or r.is_scenario(scenario)]

    def table(self):
        """One dict per row: scenario, strategy, trainable_params, planned_bytes and
        <metric>_mean / <metric>_std (ready for pandas.DataFrame)."""
        out = []
        for r in self.rows:
            d = {"scenario": r.scenario, "strategy": r.strategy, "trainable_params": r.trainable_params,
                 "planned_bytes": r.planned_bytes}
            for k in r.metrics:
                d[k + "_mean"] = r.mean(k)
                d[k + "_std"] = r.std(k)
            out.append(d)
        return out

    def __str__(self):
        lines = []
        for r in self.rows:
            ms = "  ".join("%s %.4f±%.4f" % (k, r.mean(k), r.std(k)) for k in r.metrics)
            lines.append("%-3s %-40s %9d params %10d bytes  %s" % (r.scenario, r.strategy, r.trainable_params,
                                                                   r.planned_bytes, ms))
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or "results" not in d:
            raise ValueError("not odl experiment --json output: no 'results'")
        return cls(int(d.get("seeds", 0)), [ExperimentRow.from_dict(r) for r in d["results"]])


def read_experiment(src):
    """Parses `odl experiment --json` output: a path, a file object, a JSON
    string or an already-parsed dict."""
    if isinstance(src, dict):
        return ExperimentResults.from_dict(src)
    if hasattr(src, "read"):
        return ExperimentResults.from_dict(json.load(src))
    if isinstance(src, str) and src.lstrip().startswith("{"):
        return ExperimentResults.from_dict(json.loads(src))
    with open(src) as f:
        return ExperimentResults.from_dict(json.load(f))


def find_tool():
    """The `odl` tool: $ODL_TOOL, the installed bin/ beside this package, the
    build directory of the loaded library, then PATH."""
    from . import _lib
    for c in _lib.tool_candidates():
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    w = shutil.which("odl")
    if w:
        return w
    raise FileNotFoundError("odl: cannot find the odl tool; set ODL_TOOL or put it on PATH")


def run_experiment(which="s1", seeds=1, data=None, work=None, only=None, add=None, init=None, quiet=True,
                   tool=None, json_path=None, timeout=None):
    """Runs `odl experiment WHICH --seeds N --json FILE ...` and returns its
    ExperimentResults. only: a strategy prefix or a list of them; add: a spec
    or a list (KIND[:OPT,...]); work: where base models are kept (reused across
    runs; default odl-work in the current directory, as the tool)."""
    tool = tool or find_tool()
    cmd = [tool, "experiment", str(which), "--seeds", str(int(seeds))]
    if data:
        cmd += ["--data", os.fspath(data)]
    if work:
        cmd += ["--work", os.fspath(work)]
    if init:
        cmd += ["--init", str(init)]
    if only:
        cmd += ["--only", only if isinstance(only, str) else ",".join(only)]
    for spec in ([add] if isinstance(add, str) else (add or [])):
        cmd += ["--add", spec]
    if quiet:
        cmd.append("--quiet")
    tmpdir = None
    if json_path is None:
        tmpdir = tempfile.mkdtemp(prefix="odl-exp-")
        json_path = os.path.join(tmpdir, "results.json")
    cmd += ["--json", os.fspath(json_path)]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd), p.returncode,
                                                            (p.stderr or p.stdout).strip()[-2000:]))
        res = read_experiment(json_path)
        res.output = p.stdout
        return res
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
