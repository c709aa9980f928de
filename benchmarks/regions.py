"""A 2-wave multi-region rollback against the sum of its regions rolled back one by one.

Three regions of one service, each its own kube simulator (one kubeconfig, one context each),
every API call answered after 100 ms of injected latency. Waves: [[eu-west-1], [us-east-1,
ap-south-1]]. Measured from the signed `/rollback run … --immediate` to the rollback's final
state stored:

1. the whole rollback, wave by wave (the regions of wave 2 run at the same time);
2. the same three regions rolled back one after another (`--region <one>` each), summed.

Wave 2 in parallel should cost about its slowest region, so (1) ≈ eu + max(us, ap) while (2) ≈
eu + us + ap. Each run starts from fresh clusters and a fresh bot (a second rollback of the same
release would be refused as a flip-flop).

    python benchmarks/regions.py [--runs 3] [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from pydantic import SecretStr

from bot.adapters.kube.client import KubernetesClient
from bot.app import BotApp, build_app
from bot.catalog.load import parse_catalog
from bot.runtime.logs import setup_logging
from bot.runtime.server import HttpServer
from bot.runtime.web import WebApp
from bot.settings import Settings
from bot.sim.kube_api import KubeSimulator
from bot.sim.kubeconfig import kubeconfig_text
from bot.sim.slack_api import SlackSimulator
from bot.sim.slack_client import SlackRequester

NS = "shop"
REGIONS = {"eu-west-1": "eu", "us-east-1": "us", "ap-south-1": "ap"}
REGION_LINES = "".join(f"      - {{name: {n}, context: {c}}}\n" for n, c in REGIONS.items())
CATALOG = f"""defaults:
  channel: C0DEPLOYS
services:
  checkout:
    namespace: {NS}
    deployment: checkout-api
    responders: [U0ONCALL1]
    regions:
{REGION_LINES}    waves: [[eu-west-1], [us-east-1, ap-south-1]]
"""


@contextmanager
def world(slack: SlackSimulator, latency: float, tmp: Path) -> Iterator[tuple[BotApp, str, str]]:
    """Fresh clusters (seeded, then slowed down) and a fresh bot; yields the bot, its URL and
    its signing secret."""
    with ExitStack() as stack:
        sims = {c: stack.enter_context(KubeSimulator()) for c in REGIONS.values()}
        for sim in sims.values():
            sim.seed_deployment(NS, "checkout-api", images=["checkout:1", "checkout:2"])
            sim.set_latency(latency)
        path = tmp / f"kubeconfig-{secrets.token_hex(4)}"
        path.write_text(kubeconfig_text({c: s.url for c, s in sims.items()}), encoding="utf-8")
        secret = secrets.token_hex(8)
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-bench"),
            slack_signing_secret=SecretStr(secret),
            slack_api_url=slack.api_url,
            database_url=f"sqlite:///{tmp / f'bench-{secrets.token_hex(4)}.db'}",
        )
        kube = KubernetesClient(kubeconfig=str(path))
        bot = build_app(settings, catalog=parse_catalog(CATALOG), kube=kube)
        stack.callback(bot.close)
        server = HttpServer(WebApp(bot), "127.0.0.1", 0, threads=8).start()
        stack.callback(server.stop)
        yield bot, server.url, secret


def timed_run(bot: BotApp, requester: SlackRequester, rollback_id: int, text: str) -> float:
    """Seconds from the signed command to the rollback's final state stored."""
    t0 = time.perf_counter()
    answer = requester.slash(text, user_id="U0ONCALL1").json()["text"]
    assert f"Rollback #{rollback_id} of" in answer, answer
    while True:
        rollback = bot.deps.repo.get_rollback(rollback_id)
        if rollback is not None and rollback.finished_at is not None:
            took = time.perf_counter() - t0
            assert rollback.status == "succeeded", rollback.error
            bot.deps.engine.wait_idle(30)
            bot.deps.work.wait_idle(30)
            return took
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args()
    setup_logging("ERROR")
    latency = args.latency_ms / 1000
    waves: list[float] = []
    one_by_one: list[dict[str, float]] = []
    with (
        SlackSimulator(bot_token="xoxb-bench") as slack,
        tempfile.TemporaryDirectory() as tmp,
        httpx.Client(timeout=60) as http,
    ):
        for _ in range(args.runs):
            with world(slack, latency, Path(tmp)) as (bot, url, secret):
                requester = SlackRequester(url, secret, http)
                waves.append(timed_run(bot, requester, 1, "run checkout --immediate bench"))
            with world(slack, latency, Path(tmp)) as (bot, url, secret):
                requester = SlackRequester(url, secret, http)
                one_by_one.append(
                    {
                        region: timed_run(
                            bot, requester, n, f"run checkout --immediate --region {region} bench"
                        )
                        for n, region in enumerate(REGIONS, 1)
                    }
                )
    sums = [sum(r.values()) for r in one_by_one]
    ideal = [r["eu-west-1"] + max(r["us-east-1"], r["ap-south-1"]) for r in one_by_one]
    print(
        f"3 regions × 1 service, {args.latency_ms:g} ms per Kubernetes API call, waves"
        f" [[eu-west-1], [us-east-1, ap-south-1]], {args.runs} runs (median):"
    )
    for region in REGIONS:
        alone = statistics.median(r[region] for r in one_by_one)
        print(f"  {region:<11} alone            {alone:6.2f} s")
    print(f"  2-wave rollback (wall time)    {statistics.median(waves):6.2f} s")
    print(f"  sum of the regions one by one  {statistics.median(sums):6.2f} s")
    print(f"  eu + slowest of wave 2, alone  {statistics.median(ideal):6.2f} s  (own checks each)")
    ratio = statistics.median(waves) / statistics.median(sums)
    print(f"  ratio wave rollback / sum      {ratio:6.2f}")


if __name__ == "__main__":
    main()
