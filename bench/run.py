"""Benchmarks of the templates: copy, onboarding at scale, update and check of a 500-app repository.

    .venv/bin/python bench/run.py [--runs 5] [--sizes 1,50,200,500] [--only copy,onboard,clusters,bulk,update,check] [--docs]

Every figure is a real command, timed from the outside as a user runs it (wall clock, a fresh
process each time, an isolated HOME):

- copy:    `copier copy` of the platform template with the defaults, and of a one-file template
           (Copier's own fixed cost), and their ratio;
- onboard: `copier copy` of the app template with platform_repo set (the app repository, its
           registration on the platform repository: answers, rendered files, deploy key and
           age key SOPS-encrypted, staged) into platform repositories that hold N apps already;
- clusters: onboarding (`hooks.onboard --cluster …`) onto one or three clusters, and changing one
           cluster (`hooks.cluster_admin set`), in a three-cluster and a one-cluster repository
           holding the same number of apps (200);
- bulk:    onboarding from a file (`hooks.onboard --from-file`) of one app and of 50, into the same
           200-app repository;
- update:  `copier update` of the 500-app repository to a release that changes every app's files;
- check:   `python -m hooks.check` of the 500-app repository.

Fixtures (template snapshot, platform repositories with N apps) are built once, outside the timed
part, and cached in bench/.cache (bench/fixtures.py). Runs are interleaved (one run of every
measure, then the next run), so a burst of load from elsewhere spreads over all of them; the
1-minute load average is recorded before every run. Writes bench/results.json and prints the
markdown tables; --docs also puts them into docs/performance.md's "Latest figures" section. A run
with --only replaces those measures and keeps the others of bench/results.json when they were
taken on the same kind of machine (each measure records the date of its run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures as fx  # noqa: E402

RESULTS = fx.ROOT / "bench" / "results.json"
PY = sys.executable
COPIER = [PY, "-m", "copier"]


def machine() -> dict[str, str | int]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "0") if Path("/proc/meminfo").exists() else "0"

    def version(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    return {
        "cpu": cpu, "cores": os.cpu_count() or 0, "memory_gib": round(int(mem) / 2**20, 1),
        "os": platform.platform(), "python": platform.python_version(),
        "copier": version([*COPIER, "--version"]).split()[-1], "git": version(["git", "--version"]),
        "sops": version([str(Path(PY).parent / "sops"), "--version", "--disable-version-check"]),
    }


class Measure:
    """One timed command, prepared afresh (untimed) before every run."""

    def __init__(self, key: str, label: str, prepare, command, check=None) -> None:
        self.key, self.label, self.prepare, self.command, self.check = key, label, prepare, command, check
        self.seconds: list[float] = []
        self.loads: list[float] = []

    def run_once(self, env: dict[str, str]) -> None:
        workdir = self.prepare()
        load = os.getloadavg()[0]
        started = time.perf_counter()
        result = subprocess.run(self.command(workdir), env=env, cwd=workdir, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"{self.label} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        if self.check:
            self.check(workdir, result)
        self.seconds.append(elapsed)
        self.loads.append(load)

    def summary(self) -> dict:
        return {
            "label": self.label, "runs": len(self.seconds), "median_s": round(statistics.median(self.seconds), 3),
            "min_s": round(min(self.seconds), 3), "max_s": round(max(self.seconds), 3),
            "seconds": [round(s, 3) for s in self.seconds], "load_1m": [round(x, 2) for x in self.loads],
        }


def build(args: argparse.Namespace, env: dict[str, str], scratch: Path) -> list[Measure]:
    template = fx.template_snapshot()
    sizes = [int(size) for size in args.sizes.split(",")]
    needed = (set(sizes) if "onboard" in args.only else set()) | ({args.big} if args.only & {"update", "check"} else set())
    repos = {size: fx.platform_with_apps(size, env) for size in sorted(needed)}
    measures: list[Measure] = []

    def fresh(name: str) -> Path:
        path = scratch / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        shutil.rmtree(Path(env["OPENCENTER_AGE_KEY_DIR"]), ignore_errors=True)
        return path

    if "copy" in args.only:
        measures.append(Measure(
            "copy_one_file", "copier copy, one-file template", lambda: fresh("one"),
            lambda wd: [*COPIER, "copy", "--trust", "--defaults", "--quiet", "--vcs-ref", "0.0.1",
                        str(fx.one_file_template()), str(wd / "out")]))
        measures.append(Measure(
            "copy_platform", "copier copy, platform template (default services)", lambda: fresh("platform"),
            lambda wd: [*COPIER, "copy", "--trust", "--defaults", "--quiet", "--vcs-ref", "0.0.1",
                        "--data", "template=platform", str(template), str(wd / "out")],
            lambda wd, _: (wd / "out" / ".copier-answers.yml").is_file() or sys.exit("platform copy wrote nothing")))
    if "onboard" in args.only:
        for size in sizes:
            def prepare(size: int = size) -> Path:
                wd = fresh(f"onboard-{size}")
                fx.fresh_copy(repos[size], wd / "platform")
                return wd

            def registered(wd: Path, _result, size: int = size) -> None:
                status = fx.git("status", "--porcelain", cwd=wd / "platform")
                if "onboarded.yaml" not in status or not (wd / "onboarded" / "docs" / "deploy-key.pub").is_file():
                    sys.exit(f"onboarding at {size} apps did not register the app:\n{status}")

            measures.append(Measure(
                f"onboard_{size}", f"onboard one more app (app copy + registration), platform holding {size} app{'s' if size != 1 else ''}",
                prepare,
                lambda wd: [*COPIER, "copy", "--trust", "--defaults", "--quiet", "--vcs-ref", "0.0.1",
                            "--data", "template=app", "--data", "app_name=onboarded",
                            "--data", f"platform_repo={wd / 'platform'}", str(template), str(wd / "onboarded")],
                registered))
    if "clusters" in args.only:
        measures += cluster_measures(args, env, fresh)
    if "bulk" in args.only:
        measures += bulk_measures(args, env, fresh)
    if "update" in args.only:
        def prepare_update() -> Path:
            wd = fresh("update")
            fx.fresh_copy(repos[args.big], wd / "platform")
            return wd / "platform"

        def updated(wd: Path, _result) -> None:
            changed = fx.git("diff", "--name-only", cwd=wd).split()
            if fx.git("diff", "--name-only", "--diff-filter=U", cwd=wd).strip() or len(changed) < 2 * args.big:
                sys.exit(f"update of the {args.big}-app repository changed {len(changed)} files or left conflicts")

        measures.append(Measure(
            f"update_{args.big}", f"copier update of the {args.big}-app repository (every app's files change)",
            prepare_update,
            lambda wd: [*COPIER, "update", "--trust", "--defaults", "--quiet", "--vcs-ref", "0.0.2"],
            updated))
    if "check" in args.only:
        measures.append(Measure(
            f"check_{args.big}", f"check (python -m hooks.check) of the {args.big}-app repository",
            lambda: repos[args.big], lambda wd: [PY, "-m", "hooks.check", str(wd)]))
        # The same check with the CRD CEL rules switched off (defaults are applied before the schema
        # is validated either way), in the bench only:
        # what evaluating them costs (target: at most 1.2x).
        measures.append(Measure(
            f"check_{args.big}_no_crd_rules", f"the same check without CRD CEL rules",
            lambda: repos[args.big], lambda wd: [PY, "-c", NO_CRD_RULES, str(wd)]))
    return measures


def cluster_measures(args: argparse.Namespace, env: dict[str, str], fresh) -> list[Measure]:
    """Several clusters: onboarding onto one cluster or three, in a one-cluster and a three-cluster
    repository holding the same number of apps, and changing one cluster (`opencenter-cluster set`:
    a re-render of the repository) in each."""
    size = args.cluster_apps
    one, three = fx.platform_with_apps(size, env), fx.platform_with_clusters(size, env)
    measures = []

    def onboarding(key: str, label: str, repo: Path, clusters: list[str]) -> Measure:
        def prepare() -> Path:
            wd = fresh(key)
            fx.fresh_copy(repo, wd / "platform")
            return wd

        def registered(wd: Path, _result) -> None:
            staged = fx.git("diff", "--cached", "--name-only", cwd=wd / "platform").split()
            if sum(rel.endswith("/sources/onboarded.yaml") for rel in staged) != len(clusters):
                sys.exit(f"{label}: expected the app on {clusters}, staged {staged}")

        return Measure(key, label, prepare,
                       lambda wd: [PY, "-m", "hooks.onboard", "--platform", str(wd / "platform"), "--name", "onboarded",
                                   "--url", "ssh://git@github.com/acme/onboarded", "--secrets",
                                   *(f"--cluster={cluster}" for cluster in clusters)],
                       registered)

    measures.append(onboarding("onboard_1_of_1_cluster", f"onboard one app, one-cluster repository with {size} apps",
                               one, ["prod"]))
    measures.append(onboarding("onboard_1_of_3_clusters", f"onboard one app onto 1 of 3 clusters ({size} apps)",
                               three, ["prod"]))
    measures.append(onboarding("onboard_3_of_3_clusters", f"onboard one app onto 3 of 3 clusters ({size} apps)",
                               three, list(fx.CLUSTERS)))

    def setting(key: str, label: str, repo: Path, cluster: str) -> Measure:
        def prepare() -> Path:
            wd = fresh(key)
            fx.fresh_copy(repo, wd / "platform")
            return wd / "platform"

        def changed(wd: Path, _result) -> None:
            staged = fx.git("diff", "--cached", "--name-only", cwd=wd).split()
            if not staged or any(rel.startswith("applications/") and f"/overlays/{cluster}/" not in f"/{rel}"
                                 for rel in staged):
                sys.exit(f"{label}: changed {staged}")

        return Measure(key, label, prepare,
                       lambda wd: [PY, "-m", "hooks.cluster_admin", "set", "--platform", str(wd), cluster,
                                   "gitops_base_tag=2026.04"],
                       changed)

    measures.append(setting("set_1_cluster", f"change one cluster's gitops_base_tag, one-cluster repository ({size} apps)",
                            one, "prod"))
    measures.append(setting("set_3_clusters", f"change one cluster's gitops_base_tag, three-cluster repository ({size} apps)",
                            three, "staging"))
    return measures


def bulk_measures(args: argparse.Namespace, env: dict[str, str], fresh) -> list[Measure]:
    """Onboarding from a file (`hooks.onboard --from-file`) of one app and of `--bulk` apps, into the
    same repository: the second should cost about one onboarding, not `--bulk` of them."""
    repo = fx.platform_with_apps(args.cluster_apps, env)
    measures = []
    for count in (1, args.bulk):
        def prepare(count: int = count) -> Path:
            wd = fresh(f"bulk-{count}")
            fx.fresh_copy(repo, wd / "platform")
            entries = [{"name": f"bulk-{index}", "url": f"ssh://git@github.com/acme/bulk-{index}", "secrets": True}
                       for index in range(count)]
            (wd / "apps.yaml").write_text(json.dumps(entries))  # JSON is YAML
            return wd

        def registered(wd: Path, _result, count: int = count) -> None:
            staged = fx.git("diff", "--cached", "--name-only", cwd=wd / "platform").split()
            if sum(rel.endswith("-deploy-key.sops.yaml") for rel in staged) != count:
                sys.exit(f"onboarding {count} apps from a file staged {len(staged)} files")

        measures.append(Measure(
            f"onboard_file_{count}", f"onboard {count} app{'s' if count > 1 else ''} from a file "
                                     f"(--from-file), repository with {args.cluster_apps} apps",
            prepare, lambda wd: [PY, "-m", "hooks.onboard", "--platform", str(wd / "platform"),
                                 "--from-file", str(wd / "apps.yaml")],
            registered))
    return measures


NO_CRD_RULES = (
    "import sys; from hooks import validate; validate.Validator._rule_problems = lambda self, schema, obj: []; "
    "from hooks.check import main; sys.exit(main(sys.argv[1:]))"
)


TARGETS = (  # (measure or ratio, target, unit): issue 7's targets on a 2-core machine, medians
    ("ratio platform copy / one-file copy", 1.3, "×"),
    ("ratio onboarding at 500 / at 1 apps", 2.0, "×"),
    ("onboard_1", 2.5, "s"),
    ("update_500", 20.0, "s"),
    ("check_500", 30.0, "s"),
    ("ratio check with / without CRD rules", 1.2, "×"),
    ("ratio onboarding onto 3 / onto 1 of 3 clusters", 1.5, "×"),
    ("ratio onboarding onto 1 of 3 clusters / onto the only cluster", 1.2, "×"),
    ("ratio changing a cluster of 3 / of 1 (same apps)", 1.0, "×"),
    ("ratio onboarding 50 apps / 1 app from a file", 3.0, "×"),
)
FIGURES_BEGIN, FIGURES_END = "<!-- bench:begin (python bench/run.py --docs) -->", "<!-- bench:end -->"


def table(results: dict) -> str:
    rows = ["| measure | median | min–max | runs | load (1 min) |", "|---|---:|---:|---:|---:|"]
    for item in results["measures"].values():
        loads = item["load_1m"]
        rows.append(f"| {item['label']} | {item['median_s']:.2f} s | {item['min_s']:.2f}–{item['max_s']:.2f} s "
                    f"| {item['runs']} | {min(loads):.1f}–{max(loads):.1f} |")
    for name, ratio in results["ratios"].items():
        rows.append(f"| ratio {name} | {ratio['value']:.2f} | target ≤ {ratio['target']} | | |")
    return "\n".join(rows)


def targets(results: dict) -> str:
    rows = ["| target (2 cores, medians) | result |", "|---|---|"]
    for key, limit, unit in TARGETS:
        if key.startswith("ratio "):
            value = results["ratios"].get(key[len("ratio "):], {}).get("value")
            what = key[len("ratio "):].replace(" / ", " ÷ ")
        else:
            value = results["measures"].get(key, {}).get("median_s")
            what = results["measures"].get(key, {}).get("label", key)
        if value is None:
            continue
        verdict = "met" if value <= limit else "**not met**"
        rows.append(f"| {what} ≤ {limit:g}{' ' if unit == 's' else ''}{unit} | {verdict}: {value:.2f}{' ' if unit == 's' else ''}{unit} |")
    return "\n".join(rows)


def figures_block(results: dict) -> str:
    info = results["machine"]
    loads = [x for item in results["measures"].values() for x in item["load_1m"]]
    earlier = sorted({item["date"] for item in results["measures"].values() if item.get("date", results["date"])
                      != results["date"]})
    kept = f" Measures this command did not run keep their figures of {', '.join(earlier)}." if earlier else ""
    return (
        f"Latest figures: {results['date']}, `{results['command']}`, {info['cores']} cores {info['cpu']}, "
        f"{info['memory_gib']} GiB, {info['os']}, Python {info['python']}, Copier {info['copier']}, "
        f"{info['git']}, {info['sops']}.{kept} 1-minute load average during the runs: "
        f"{min(loads):.1f}–{max(loads):.1f} (the benchmark itself keeps about one core busy).\n\n"
        f"{table(results)}\n\n{targets(results)}"
    )


def write_figures(results: dict, page: Path = fx.ROOT / "docs/performance.md") -> None:
    text = page.read_text()
    start, end = text.index(FIGURES_BEGIN) + len(FIGURES_BEGIN), text.index(FIGURES_END)
    page.write_text(text[:start] + "\n" + figures_block(results) + "\n" + text[end:])


def ratios(measures: dict[str, dict], sizes: list[int], bulk: int = 50) -> dict[str, dict]:
    out = {}
    if "copy_platform" in measures and "copy_one_file" in measures:
        out["platform copy / one-file copy"] = {
            "value": round(measures["copy_platform"]["median_s"] / measures["copy_one_file"]["median_s"], 2), "target": 1.3}
    small, large = min(sizes), max(sizes)
    if f"onboard_{small}" in measures and f"onboard_{large}" in measures and small != large:
        out[f"onboarding at {large} / at {small} apps"] = {
            "value": round(measures[f"onboard_{large}"]["median_s"] / measures[f"onboard_{small}"]["median_s"], 2),
            "target": 2.0}
    for name, top, bottom, target in (
            ("onboarding onto 3 / onto 1 of 3 clusters", "onboard_3_of_3_clusters", "onboard_1_of_3_clusters", 1.5),
            ("onboarding onto 1 of 3 clusters / onto the only cluster", "onboard_1_of_3_clusters", "onboard_1_of_1_cluster", 1.2),
            ("changing a cluster of 3 / of 1 (same apps)", "set_3_clusters", "set_1_cluster", 1.0),
            (f"onboarding {bulk} apps / 1 app from a file", f"onboard_file_{bulk}", "onboard_file_1", 3.0)):
        if top in measures and bottom in measures:
            out[name] = {"value": round(measures[top]["median_s"] / measures[bottom]["median_s"], 2), "target": target}
    big = next((key for key in measures if key.startswith("check_") and not key.endswith("_no_crd_rules")), None)
    if big and f"{big}_no_crd_rules" in measures:
        out["check with / without CRD rules"] = {
            "value": round(measures[big]["median_s"] / measures[f"{big}_no_crd_rules"]["median_s"], 2), "target": 1.2}
    return out


def kept_measures(output: Path, here: dict) -> dict[str, dict]:
    """The measures of an earlier run in `output` that a run of some measures (--only) keeps: only
    from the same kind of machine (CPU model and cores), else figures of two machines would mix."""
    try:
        earlier = json.loads(output.read_text())
    except (OSError, ValueError):
        return {}
    machine_then = earlier.get("machine") or {}
    if (machine_then.get("cpu"), machine_then.get("cores")) != (here["cpu"], here["cores"]):
        return {}
    return {key: {**item, "date": item.get("date", earlier.get("date"))}
            for key, item in (earlier.get("measures") or {}).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of every measure (default 5)")
    parser.add_argument("--sizes", default="1,50,200,500", help="apps already registered when onboarding one more")
    parser.add_argument("--big", type=int, default=500, help="apps in the repository that is updated and checked")
    parser.add_argument("--only", default="copy,onboard,clusters,bulk,update,check",
                        help="comma-separated subset of the measures")
    parser.add_argument("--cluster-apps", type=int, default=200,
                        help="apps in the repositories of the cluster and bulk measures")
    parser.add_argument("--bulk", type=int, default=50, help="apps in the file of the bulk onboarding measure")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--docs", action="store_true", help="also write the figures into docs/performance.md")
    args = parser.parse_args(argv)
    args.only = set(args.only.split(","))

    env = fx.isolated_env(fx.CACHE / "home")
    print(f"fixtures in {fx.cache_dir()} (built once, not timed) ...", file=sys.stderr)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="opencenter-bench-") as tmp:
        measures = build(args, env, Path(tmp))
        print(f"fixtures ready in {time.perf_counter() - started:.0f} s; {args.runs} run(s) of "
              f"{len(measures)} measures", file=sys.stderr)
        for run in range(args.runs):
            for measure in measures:
                measure.run_once(env)
                print(f"  run {run + 1}: {measure.key} {measure.seconds[-1]:.2f} s (load {measure.loads[-1]:.1f})",
                      file=sys.stderr)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    summaries = {**kept_measures(args.output, machine()), **{m.key: {**m.summary(), "date": now} for m in measures}}
    results = {
        "date": now,
        "command": "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "measures": summaries,
        "ratios": ratios(summaries, [int(size) for size in args.sizes.split(",")], args.bulk),
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(figures_block(results))
    if args.docs:
        write_figures(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
