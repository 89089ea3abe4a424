"""The baseline of issue 10: a user's obvious script with the official SDK, one call at a time.

What a DCS user writes without the harvester, with ``huaweicloudsdkdcs`` (install with
``pip install -e '.[bench]'``): list the instances, then for each one in turn show it, list its
shards (when it is not single-node), ask each replica for yesterday's run log
(``query_time=1``), poll the run-log listing until the new files are ``succeed``, then create a
download link for each file and GET it, writing it to disk. Every call waits for the previous
one; nothing overlaps.

    python bench/bench_sdk_loop.py                          # 50 instances, 50 ms per API call
    python bench/bench_sdk_loop.py --instances 5 --latency-ms 10
    python bench/bench_sdk_loop.py --compare-harvester      # then `harvester run`, and the ratio

``--compare-harvester`` then runs ``harvester run --config ...`` as a subprocess, against a fresh
emulator with the same seed (the same fleet), with the harvester's DEFAULT settings: the config
sets only what the machine needs (archive root, credentials from the environment, endpoints and
the emulator's link host) and ``collect.days`` (1 by default, so both sides do the same work: on
an empty archive the automatic catch-up would collect all 7 retained days). Limits and poll
intervals are not set, which is the point: those are what users run.

The emulator runs in its own process (``bench/emulator_proc.py``, started the way
``bench_harvest.py`` starts it) with a fixed latency on every DCS API call. Never run by the test
suite.

When does the script stop polling? A user expects one file per replica for yesterday, so an
instance is done as soon as every replica has a new file and none is still in progress. A quiet
Redis logs nothing some days (the emulator's ``--quiet-rate``), so the script also stops once the
new files are all final and the listing has not changed for ``--stable-polls`` polls; and it
gives up on an instance after ``--poll-timeout`` seconds (counted in the report).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import bench_harvest

MIB = 1024 * 1024
FINAL = ("succeed", "failed")
T = TypeVar("T")


# --------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=50)
    p.add_argument("--latency-ms", type=float, default=50.0, help="added to every DCS API call")
    p.add_argument("--seed", type=int, default=1, help="emulator seed: the same fleet every run")
    p.add_argument("--log-size", type=int, default=16 * 1024, help="bytes of a full day's log")
    p.add_argument("--collect-delay", type=float, default=1.0, help="seconds until collected logs appear")
    p.add_argument("--quiet-rate", type=float, default=0.1, help="emulator: share of quiet (replica, day)")
    p.add_argument("--poll-interval", type=float, default=1.0, help="the script's sleep between polls")
    p.add_argument("--stable-polls", type=int, default=2, help="unchanged polls that end the wait")
    p.add_argument("--poll-timeout", type=float, default=120.0, help="give up on an instance after this")
    p.add_argument("--compare-harvester", action="store_true", help="also run `harvester run` (defaults)")
    p.add_argument(
        "--harvester-days",
        default="1",
        choices=("1", "auto"),
        help="collect.days for the harvester: 1 = the same work as the script (default); "
        "auto = the default catch-up (all 7 retained days on an empty archive)",
    )
    p.add_argument("--harvester-timeout", type=float, default=1800.0, help="kill `harvester run` after this")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.add_argument("--keep", action="store_true", help="keep the work directory (downloads, config, logs)")
    return p.parse_args(argv)


def emulator_args(args: argparse.Namespace) -> argparse.Namespace:
    """bench_harvest's arguments (with its defaults) for the emulator this bench needs."""
    return bench_harvest.parse_args(
        [
            f"--instances={args.instances}",
            f"--latency-ms={args.latency_ms}",
            f"--seed={args.seed}",
            f"--log-size={args.log_size}",
            f"--collect-delay={args.collect_delay}",
            f"--quiet-rate={args.quiet_rate}",
        ]
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- the SDK loop


@dataclass(slots=True)
class LoopOutcome:
    makespan: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)  # SDK calls by kind, and downloads
    files: int = 0
    bytes: int = 0
    failed_files: int = 0  # listed as `failed` by DCS
    errors: list[str] = field(default_factory=list)  # one line per instance that raised
    timed_out: int = 0  # instances whose poll deadline passed
    skipped: int = 0  # instances not RUNNING
    polls: int = 0
    poll_wait_s: float = 0.0  # time spent between the last collect and the end of polling


class SdkLoop:
    """The user's script. Sequential on purpose: that is what it measures."""

    def __init__(self, args: argparse.Namespace, ready: dict[str, Any], out_dir: Path) -> None:
        # Imported here so that the module (and `--help`) loads without the `bench` extra.
        from huaweicloudsdkcore.auth.credentials import BasicCredentials  # noqa: PLC0415
        from huaweicloudsdkcore.http.http_config import HttpConfig  # noqa: PLC0415
        from huaweicloudsdkdcs import v2  # noqa: PLC0415

        self.v2 = v2
        self.args = args
        self.out_dir = out_dir
        self.outcome = LoopOutcome()
        credentials = BasicCredentials(ready["access_key"], ready["secret_key"], ready["project_id"])
        # An explicit endpoint instead of a region: no IAM look-up, and the builder keeps the
        # scheme it is given (http on loopback; a bare host would become https).
        self.client = (
            v2.DcsClient.new_builder()
            .with_credentials(credentials)
            .with_http_config(HttpConfig.get_default_config())
            .with_endpoints([ready["dcs_endpoint"]])
            .build()
        )

    def call(self, kind: str, fn: Callable[[Any], T], request: Any) -> T:
        self.outcome.calls[kind] += 1
        return fn(request)

    def list_instances(self) -> list[Any]:
        found: list[Any] = []
        while True:
            page = self.call(
                "list_instances",
                self.client.list_instances,
                self.v2.ListInstancesRequest(offset=len(found), limit=1000),
            )
            batch = page.instances or []
            found.extend(batch)
            if not batch or len(found) >= (page.instance_num or 0):
                return found

    def list_runlogs(self, instance_id: str) -> list[Any]:
        items: list[Any] = []
        while True:
            page = self.call(
                "list_runlogs",
                self.client.list_redislog,
                self.v2.ListRedislogRequest(
                    instance_id=instance_id, log_type="run", offset=len(items), limit=1000
                ),
            )
            batch = page.file_list or []
            items.extend(batch)
            if not batch or len(items) >= (page.total_num or 0):
                return items

    def replicas(self, instance_id: str, cache_mode: str) -> list[str | None]:
        """Replication ids to collect from; ``None`` stands for a single-node instance."""
        if cache_mode == "single":
            return [None]
        groups = self.call(
            "list_groups",
            self.client.list_group_replication_info,
            self.v2.ListGroupReplicationInfoRequest(instance_id=instance_id),
        )
        return [r.replication_id for g in groups.group_list or [] for r in g.replication_list or []]

    def wait_for_new_files(self, instance_id: str, before: set[str], replicas: int) -> list[Any]:
        """Poll until each replica has a new final file, or the new files stopped changing."""
        start = time.monotonic()
        deadline = start + self.args.poll_timeout
        last: frozenset[tuple[str, str]] | None = None
        unchanged = 0
        try:
            while True:
                time.sleep(self.args.poll_interval)
                self.outcome.polls += 1
                new = [i for i in self.list_runlogs(instance_id) if i.id not in before]
                settled = all(i.status in FINAL for i in new)
                if settled and len({(i.group_name, i.replication_ip) for i in new}) >= replicas:
                    return new
                seen = frozenset((i.id, i.status) for i in new)
                unchanged = unchanged + 1 if seen == last else 0
                last = seen
                if settled and unchanged >= self.args.stable_polls:
                    return new
                if time.monotonic() >= deadline:
                    self.outcome.timed_out += 1
                    return [i for i in new if i.status in FINAL]
        finally:
            self.outcome.poll_wait_s += time.monotonic() - start

    def download(self, instance_id: str, item: Any) -> None:
        link = self.call(
            "link",
            self.client.create_redislog_download_link,
            self.v2.CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=item.id),
        ).link
        target = self.out_dir / instance_id / Path(str(item.file_name)).name
        target.parent.mkdir(parents=True, exist_ok=True)
        self.outcome.calls["download"] += 1
        with urllib.request.urlopen(link, timeout=60) as response, target.open("wb") as f:
            shutil.copyfileobj(response, f, 1024 * 1024)
        self.outcome.files += 1
        self.outcome.bytes += target.stat().st_size

    def harvest_instance(self, instance_id: str) -> None:
        shown = self.call(
            "show_instance", self.client.show_instance, self.v2.ShowInstanceRequest(instance_id=instance_id)
        )
        if shown.status != "RUNNING":
            self.outcome.skipped += 1
            return
        replicas = self.replicas(instance_id, shown.cache_mode)
        before = {i.id for i in self.list_runlogs(instance_id)}
        for replication_id in replicas:
            self.call(
                "collect",
                self.client.create_redislog,
                self.v2.CreateRedislogRequest(
                    instance_id=instance_id, query_time=1, log_type="run", replication_id=replication_id
                ),
            )
        for item in self.wait_for_new_files(instance_id, before, len(replicas)):
            if item.status == "succeed":
                self.download(instance_id, item)
            else:
                self.outcome.failed_files += 1

    def run(self) -> LoopOutcome:
        from huaweicloudsdkcore.exceptions.exceptions import SdkException  # noqa: PLC0415

        start = time.perf_counter()
        for instance in self.list_instances():
            try:
                self.harvest_instance(instance.instance_id)
            except (SdkException, OSError) as exc:  # what a careful user's script would do: next one
                self.outcome.errors.append(f"{instance.instance_id}: {type(exc).__name__}: {exc}"[:300])
        self.outcome.makespan = time.perf_counter() - start
        return self.outcome


def run_sdk_loop(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = _children_cpu()
    (work / "sdk-emulator").mkdir()
    with bench_harvest.emulator_process(emulator_args(args), work / "sdk-emulator") as handle:
        outcome = SdkLoop(args, handle.ready, work / "sdk-downloads").run()
        counters = handle.counters()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        **asdict(outcome),
        "calls": dict(sorted(outcome.calls.items())),
        "api_calls": sum(n for kind, n in outcome.calls.items() if kind != "download"),
        "cpu_s": (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime),
        "emulator": _emulator_view(counters, children_before),
    }


def _emulator_view(counters: dict[str, Any], children_before: float) -> dict[str, Any]:
    return {
        "requests": counters.get("requests", {}),
        "collections": counters.get("collections"),
        "items_created": counters.get("items_created"),
        "links_issued": counters.get("links_issued"),
        "bytes_served": counters.get("bytes_served"),
        "fleet": counters.get("fleet"),
        "cpu_s": counters["cpu_s"] - children_before if "cpu_s" in counters else None,
    }


# --------------------------------------------------------------------------- harvester run


def write_default_config(root: Path, ready: dict[str, Any], days: str) -> Path:
    """Only what this machine needs; every limit and poll interval stays at its default
    (bench_harvest's ``--defaults`` config, the same file that bench writes)."""
    argv = ["--defaults"] if days == "auto" else ["--defaults", f"--days={int(days)}"]
    return bench_harvest.write_config(bench_harvest.parse_args(argv), root, ready)


def run_harvester(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    root = work / "harvester"
    children_before = _children_cpu()
    (work / "harvester-emulator").mkdir()
    with bench_harvest.emulator_process(emulator_args(args), work / "harvester-emulator") as handle:
        root.mkdir(parents=True, exist_ok=True)
        config = write_default_config(root, handle.ready, args.harvester_days)
        summary_path = root / "summary.json"
        argv = [
            sys.executable,
            "-m",
            "harvester.cli",
            "run",
            f"--config={config}",
            f"--summary-json={summary_path}",
            "--no-progress",
            "--log-format=json",
        ]
        env = {
            **os.environ,
            "OS_ACCESS_KEY": handle.ready["access_key"],
            "OS_SECRET_KEY": handle.ready["secret_key"],
        }
        cpu_before = _children_cpu()
        start = time.perf_counter()
        with (root / "stdout.txt").open("wb") as out, (root / "stderr.jsonl").open("wb") as err:
            proc = subprocess.run(
                argv,
                check=False,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=args.harvester_timeout,
            )
        makespan = time.perf_counter() - start
        cpu = _children_cpu() - cpu_before
        counters = handle.counters()
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    totals = summary.get("totals", {})
    emulator = _emulator_view(counters, children_before)
    if emulator["cpu_s"] is not None:
        emulator["cpu_s"] -= cpu  # the harvester is also a child of this process
    return {
        "makespan": makespan,
        "run_s": _run_seconds(summary),
        "exit_code": proc.returncode,
        "files": totals.get("downloaded", 0),
        "bytes": totals.get("bytes", 0),
        "failed_files": totals.get("failed", 0) + totals.get("cancelled", 0),
        "collections": totals.get("collections"),
        "retries": totals.get("retries"),
        "cpu_s": cpu,
        "api_calls": sum(emulator["requests"].get(k, 0) for k in ("dcs", "links", "iam")),
        "downloads": emulator["requests"].get("obs", 0),
        "emulator": emulator,
        "days": args.harvester_days,
    }


def _run_seconds(summary: dict[str, Any]) -> float | None:
    """The run's own duration from its summary (without interpreter start-up and imports)."""
    try:
        started = datetime.fromisoformat(summary["started_at"])
        finished = datetime.fromisoformat(summary["finished_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return (finished - started).total_seconds()


# --------------------------------------------------------------------------- report


def print_report(d: dict[str, Any]) -> None:
    p, s = d["params"], d["sdk"]
    print(
        f"SDK loop vs harvester: {p['instances']} instances, {p['latency_ms']:g} ms per API call, "
        f"collect_delay {p['collect_delay']:g} s, log size {p['log_size']} B, seed {p['seed']}; "
        f"script polls every {p['poll_interval']:g} s"
    )
    fleet = s["emulator"]["fleet"] or {}
    print(
        f"fleet: {fleet.get('instances')} instances, {fleet.get('replicas')} replicas, {fleet.get('modes')}"
    )
    print()
    rows = [
        ("SDK loop makespan", f"{s['makespan']:.2f} s"),
        (
            "  calls made",
            f"{s['api_calls']} API + {s['calls'].get('download', 0)} downloads ({_kinds(s['calls'])})",
        ),
        ("  files downloaded", f"{s['files']} ({s['failed_files']} listed failed)"),
        ("  bytes", f"{s['bytes']} ({s['bytes'] / MIB:.2f} MiB)"),
        ("  polling", f"{s['polls']} polls, {s['poll_wait_s']:.1f} s waiting, {s['timed_out']} timed out"),
        ("  CPU (this process)", f"{s['cpu_s']:.2f} s"),
        ("  problems", f"{len(s['errors'])} instances raised, {s['skipped']} not running"),
    ]
    for line in s["errors"][:5]:
        rows.append(("    ", line))
    h = d.get("harvester")
    if h is not None:
        run_s = f", the run itself {h['run_s']:.2f} s" if h["run_s"] is not None else ""
        rows += [
            ("", ""),
            (
                "harvester run makespan",
                f"{h['makespan']:.2f} s (process, with start-up{run_s}); exit code {h['exit_code']}",
            ),
            ("  config", f"defaults; collect.days {h['days']}"),
            ("  calls made", f"{h['api_calls']} API + {h['downloads']} downloads (emulator counters)"),
            ("  files downloaded", f"{h['files']} ({h['failed_files']} failed, retries {h['retries']})"),
            ("  bytes", f"{h['bytes']} ({h['bytes'] / MIB:.2f} MiB)"),
            ("  CPU (harvester process)", f"{h['cpu_s']:.2f} s"),
            ("", ""),
            ("ratio SDK loop / harvester", f"{d['ratio']:.2f}x"),
        ]
        if h["files"] != s["files"]:
            rows.append(("  NOTE", f"unequal work: {s['files']} vs {h['files']} files"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}" if key or value else "")


def _kinds(calls: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in calls.items())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-sdk-"))
    try:
        data: dict[str, Any] = {
            "params": {
                k: getattr(args, k)
                for k in ("instances", "latency_ms", "seed", "log_size", "collect_delay", "poll_interval")
            },
            "sdk": run_sdk_loop(args, work),
        }
        if args.compare_harvester:
            data["harvester"] = run_harvester(args, work)
            hm = data["harvester"]["makespan"]
            data["ratio"] = data["sdk"]["makespan"] / hm if hm else math.inf
    finally:
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(data))
    else:
        print_report(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
