"""Profiles behind the benchmark figures: where onboarding and the check spend their time.

    .venv/bin/python bench/profiles.py [--sizes 1,500] [--declarative] [--check] [--top 25]

For each size, registers one more app in-process on a copy of the cached platform repository
(bench/fixtures.py) under cProfile, and counts the subprocesses it starts (git by subcommand,
sops, kubectl). --declarative profiles the previous path (a full `copier update --data apps=…`)
instead of the fast one; --check profiles `hooks.check` on the largest repository.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures as fx  # noqa: E402

COUNTS: collections.Counter[str] = collections.Counter()
_popen_init = subprocess.Popen.__init__


def counting_init(self, args, *rest, **kwargs):  # type: ignore[no-untyped-def]
    argv = list(args) if isinstance(args, (list, tuple)) else str(args).split()
    name = Path(str(argv[0])).name
    if name == "git":
        sub = next((str(a) for a in argv[1:] if not str(a).startswith("-") and "=" not in str(a)), "")
        name = f"git {sub}"
    COUNTS[name] += 1
    return _popen_init(self, args, *rest, **kwargs)


def report(label: str, profile: cProfile.Profile, seconds: float, top: int) -> None:
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats("cumulative").print_stats(top)
    print(f"\n=== {label}: {seconds:.2f} s (load {os.getloadavg()[0]:.1f}); "
          f"{sum(COUNTS.values())} subprocesses: {dict(COUNTS.most_common(12))}")
    print("\n".join(line for line in stream.getvalue().splitlines() if line.strip())[:6000])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,500")
    parser.add_argument("--declarative", action="store_true", help="profile the full copier update path")
    parser.add_argument("--check", action="store_true", help="also profile the check of the largest repository")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    env = fx.isolated_env(fx.CACHE / "home")
    os.environ.update(env)
    from plumbum import local  # Copier runs its commands with plumbum's copy of the environment

    subprocess.Popen.__init__ = counting_init  # type: ignore[method-assign]
    sizes = [int(size) for size in args.sizes.split(",")]
    with local.env(**env), tempfile.TemporaryDirectory(prefix="opencenter-profile-") as tmp:
        from hooks import apprender, onboard

        if args.declarative:
            onboard.render_apps = apprender.update_all  # type: ignore[assignment]
        for size in sizes:
            repo = fx.fresh_copy(fx.platform_with_apps(size, env), Path(tmp) / f"platform-{size}")
            COUNTS.clear()
            profile = cProfile.Profile()
            started = time.perf_counter()
            profile.enable()
            onboard.register(repo, {"name": "profiled", "url": "ssh://git@github.com/acme/profiled.git"},
                             out=lambda _line: None)
            profile.disable()
            path = "declarative copier update" if args.declarative else "fast render"
            report(f"onboarding at {size} apps ({path}, in-process: no interpreter start, no app copy)",
                   profile, time.perf_counter() - started, args.top)
        if args.check:
            from hooks import check

            repo = fx.platform_with_apps(max(sizes), env)
            check.run_checks(repo)  # warm: the bundle and the core schemas are read once per process
            COUNTS.clear()
            profile = cProfile.Profile()
            started = time.perf_counter()
            profile.enable()
            findings = check.run_checks(repo).findings
            profile.disable()
            report(f"check of the {max(sizes)}-app repository ({len(findings)} findings)", profile,
                   time.perf_counter() - started, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
