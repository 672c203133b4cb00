"""Planning a process's run and rendering links: constant time in the number of ranks, no communication."""

from __future__ import annotations

from _common import Row, median_time

from flyteplugins_wandb import DistributedInfo, Wandb, WandbConfig, plan


def main(quick: bool) -> list[Row]:
    number = 200 if quick else 5000
    repeat = 3 if quick else 7
    rows = []
    one = DistributedInfo(rank=0, local_rank=0, world_size=1, local_world_size=1, worker_index=0, num_workers=1)
    baseline = median_time(lambda: plan(one, "shared", "worker", "run-a0"), repeat, number)
    for world, per_node in ((64, 8), (4096, 8)):
        last = DistributedInfo(
            rank=world - 1,
            local_rank=per_node - 1,
            world_size=world,
            local_world_size=per_node,
            worker_index=world // per_node - 1,
            num_workers=world // per_node,
        )
        t = median_time(lambda last=last: plan(last, "shared", "worker", "run-a0"), repeat, number)
        rows.append(Row(f"plan() for the last of {world} ranks", t * 1e6, baseline * 1e6, "us", "vs 1 rank"))

    def render(link: Wandb) -> str:
        return link.get_link("run", "p", "d", {}, "", "a0", "pod")

    cfg = WandbConfig(project="p", entity="e", rank_scope="worker")
    first = Wandb(cfg, num_workers=1000, worker_index=0)
    links = [Wandb(cfg, num_workers=1000, worker_index=i) for i in range(1000 if not quick else 50)]
    single = Wandb(WandbConfig(project="p", entity="e"))
    t_single = median_time(lambda: render(single), repeat, number // 10)
    t_first = median_time(lambda: render(first), repeat, number // 10)
    t_all = median_time(lambda: [render(link) for link in links], repeat, 1) / len(links)
    rows.append(Row("one worker link of a 1,000-node task", t_first * 1e6, t_single * 1e6, "us", "vs a plain task's"))
    rows.append(
        Row(f"all {len(links)} worker links, per link", t_all * 1e6, t_single * 1e6, "us", "vs a plain task's link")
    )
    return rows
