"""check_preemption_safety on a real cluster: the session's `chaos_client` (2 nanny workers).

Each test runs in its own empty working directory (the check watches it), with three
tasks; the kill phase is on only where a test is about kills, to keep the suite fast.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import psutil
import pytest
from distributed import Client, LocalCluster

from chaos.testing import (
    CheckError,
    SafetyReport,
    assert_preemption_safe,
    check_preemption_safety,
)
from chaos.testing.check import KILL_TRIES
from chaos.testing.workers import WorkerPool
from tests.testing import protocols as p

TASKS = [{"task_id": i, "seed": i} for i in range(3)]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def check(client: Any, protocols: Any, kills: int = 0, **options: Any) -> SafetyReport:
    options.setdefault("tasks", TASKS)
    return check_preemption_safety(protocols, input="pose", client=client, kills=kills,
                                   seed=options.pop("seed", 1), **options)


def test_a_pure_chain_is_safe_even_when_its_workers_are_killed(chaos_client: Any,
                                                               workdir: Path) -> None:
    before = set(chaos_client.nthreads())
    report = check(chaos_client, [p.fold, p.relax], kills=3)
    assert report.safe, report.explain()
    assert report.findings == []
    # 3 calls per step and task; each kill's attempt, and the rerun of each that landed
    assert report.calls == 2 * 3 * 3 + len(report.kills) + sum(k.landed for k in report.kills)
    # spread over the steps first (a kill that missed is made again: `aimed` merges them)
    assert [step for _, step in report.aimed()] == [0, 1, 0], report.kills
    assert any(kill.landed for kill in report.kills), report.kills
    killed = {kill.worker for kill in report.kills if kill.landed}
    after = set(chaos_client.nthreads())
    assert len(after) == len(before) == 2  # left as found: the nannies replaced the dead
    assert killed and not killed & after  # those workers really died
    assert "safe to restart" in report.explain()


def test_assert_preemption_safe_raises_the_explanation_or_returns_the_report(
        chaos_client: Any, workdir: Path) -> None:
    with pytest.raises(AssertionError) as failure:
        assert_preemption_safe([p.fold, p.writes_decoy], TASKS, input="pose",
                               client=chaos_client, kills=0, seed=1)
    message = str(failure.value)
    assert "NOT safe to restart" in message
    assert "[side-effect] protocol writes_decoy, step 1" in message
    assert "task 0: it created decoy.pdb" in message
    assert "fix: " in message and "replay: check_preemption_safety(..., seed=1)" in message
    report = assert_preemption_safe([p.fold, p.relax], TASKS, input="pose",
                                    client=chaos_client, kills=0, seed=1)
    assert isinstance(report, SafetyReport) and report.safe


def test_the_cluster_is_left_with_as_many_workers_as_it_had_even_right_after_a_kill(
        chaos_client: Any) -> None:
    pool = WorkerPool(chaos_client, need_nannies=True)
    victim = next(iter(pool.workers().values()))
    assert pool.kill(victim) is None
    assert victim.address not in pool.workers()
    pool.close()  # waits for the nanny's replacement
    assert len(pool.workers()) == 2


def test_a_nanny_its_local_cluster_closed_after_a_kill_is_started_again(workdir: Path) -> None:
    # A LocalCluster closes a nanny for good when, lost-worker-timeout after one of its
    # workers died, no worker of its name is back: at 0 s, right after every kill.
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "0s"}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        report = check_preemption_safety([p.fold], TASKS[:1], "pose", client=client, kills=1)
        # A kill that reached the step after it ended is tried again on a new attempt
        # (KILL_TRIES): on a loaded machine the first one can miss.
        assert report.safe and report.kills and not report.unkilled()
        assert len(client.nthreads()) == 2


@pytest.mark.parametrize(("workers", "kills", "message"), [
    (1, 0, "the cluster has 1 worker(s); the check compares runs on two different workers"),
    (2, 1, "some workers have no nanny, so a killed worker would not come back"),
    (2, 0, "a worker runs inside this process (LocalCluster(processes=False)?)"),
])
def test_a_cluster_it_cannot_use_is_refused_with_the_fix(
        workdir: Path, monkeypatch: pytest.MonkeyPatch, workers: int, kills: int,
        message: str) -> None:
    monkeypatch.setattr("chaos.testing.workers.JOIN_TIMEOUT", 0.2)
    with LocalCluster(n_workers=workers, processes=False, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client, \
            pytest.raises(CheckError) as error:
        check_preemption_safety([p.fold], TASKS, "pose", client=client, kills=kills)
    assert message in str(error.value)


UNSAFE = [
    (p.writes_decoy, "side-effect", "created decoy.pdb"),
    (p.unseeded, "nondeterministic", "differ: output 0"),
    (p.counts_calls, "hidden-state", "module global `_calls` of tests.testing.protocols"),
    (p.caches_quietly, "hidden-state", "module global `_cache`"),
    (p.counts_through_a_helper, "hidden-state", "module global `_helper_calls` of "),
    (p.Counter(), "hidden-state", "attribute `calls` of the protocol object (0 -> 1)"),
    (p.closure_counter(), "hidden-state", "the second differs from the first"),
    (p.returns_a_lock, "not-picklable", "output 0 (lock) cannot be pickled"),
    (p.raises, "error", "ValueError: no rotamers for task"),
]


@pytest.mark.parametrize(("protocol", "kind", "evidence"), UNSAFE,
                         ids=[kind + "-" + str(i) for i, (_, kind, _) in enumerate(UNSAFE)])
def test_each_unsafe_protocol_is_found_at_its_step_for_every_task(
        chaos_client: Any, workdir: Path, protocol: Callable[..., Any], kind: str,
        evidence: str) -> None:
    report = check(chaos_client, [p.fold, protocol])
    assert not report.safe
    assert {(f.kind, f.step) for f in report.findings} == {(kind, 1)}, report.explain()
    assert sorted(f.task_id for f in report.findings) == [0, 1, 2]
    assert {f.protocol for f in report.findings} == {_name(protocol)}
    assert evidence in report.findings[0].detail, report.findings[0].detail
    text = report.explain()
    assert f"[{kind}] protocol {_name(protocol)}, step 1" in text
    assert "task 0:" in text and "fix: " in text and "replay: " in text


def test_every_call_gets_a_fresh_copy_of_its_input(chaos_client: Any, workdir: Path) -> None:
    report = check_preemption_safety([p.grows_its_input], TASKS, input=["pose"],
                                     client=chaos_client, kills=0)
    assert report.safe, report.explain()


def test_a_killed_step_is_not_blamed_for_what_an_uninterrupted_one_also_does(
        chaos_client: Any, workdir: Path) -> None:
    report = check(chaos_client, [p.writes_decoy_then_works], kills=2, tasks=TASKS[:2])
    assert list(report.aimed().values()) == [True, True], report.kills  # retried if missed
    assert report.kinds() == {"side-effect"}, report.explain()


def test_a_failed_step_stops_its_chain(chaos_client: Any, workdir: Path) -> None:
    report = check(chaos_client, [p.raises, p.unseeded])
    assert {(f.kind, f.step) for f in report.findings} == {("error", 0)}
    assert report.calls == 3 * 3  # step 1 never ran


def test_what_cannot_be_pickled_here_is_named_for_every_task(chaos_client: Any,
                                                            workdir: Path) -> None:
    lock = threading.Lock()
    report = check(chaos_client, [p.fold, lambda pose, **kwargs: (lock, pose)])
    [finding] = report.findings
    assert (finding.kind, finding.task_id, finding.step) == ("not-picklable", None, 1)
    assert finding.detail.startswith("the protocol cannot be pickled: TypeError")
    assert "every task:" in report.explain()
    report = check_preemption_safety([p.fold], TASKS, input=lock, client=chaos_client, kills=0)
    assert [(f.kind, f.step, f.detail[:36]) for f in report.findings] == [
        ("not-picklable", 0, "the input (lock) cannot be pickled: ")]


def test_a_step_killed_part_way_that_leaves_a_file_is_partial_state(
        chaos_client: Any, workdir: Path) -> None:
    report = check(chaos_client, [p.leaves_scratch], kills=2, tasks=TASKS[:2])
    # Each step killed part-way, on its first try or a later one (a loaded machine's
    # kill can reach a step after it ended: tried again).
    assert list(report.aimed().values()) == [True, True], report.kills
    assert report.kinds() == {"partial-state"}, report.explain()
    killed = {kill.task_id for kill in report.kills if kill.landed}
    assert {f.task_id for f in report.findings} == killed
    finding = report.findings[0]
    assert finding.step == 0 and finding.protocol == "leaves_scratch"
    assert f"created scratch-{finding.task_id}.tmp (9 bytes)" in finding.detail
    assert "% into its 15" in finding.detail  # "killed 41% into its 151 ms run"


@pytest.mark.parametrize("quick", [[4], [4, 5, 6]])
def test_a_step_that_ends_before_its_kill_is_killed_again_on_a_new_attempt(
        chaos_client: Any, workdir: Path, tmp_path_factory: pytest.TempPathFactory,
        quick: list[int]) -> None:
    """A loaded machine can send a kill after a short step has ended (CI, once): that
    step is tried again, and a step no kill reached is not called safe outright. Calls
    1-3 are the uninterrupted ones; each kill's attempt is the next call."""
    calls = tmp_path_factory.mktemp("calls")  # outside the watched working directory
    task = {"task_id": 0, "calls": str(calls), "quick": quick}
    report = check(chaos_client, [p.quick_on_calls], kills=1, tasks=[task])
    assert report.safe, report.explain()
    if len(quick) == 1:
        assert [kill.landed for kill in report.kills] == [False, True], report.kills
        assert report.explain().startswith("preemption check (seed 1): safe to restart\n")
    else:
        assert [kill.landed for kill in report.kills] == [False] * KILL_TRIES, report.kills
        assert "except where no kill landed part-way: 1 of the 1 steps" in report.explain()


def test_a_rerun_that_resumes_from_what_a_killed_attempt_left_is_partial_state(
        chaos_client: Any, workdir: Path) -> None:
    report = check(chaos_client, [p.resumes_from_checkpoint], kills=1, tasks=TASKS[:1])
    details = [f.detail for f in report.findings]
    assert report.kinds() == {"partial-state"}, report.explain()
    assert any("left behind: created checkpoint-" in d for d in details), details
    assert any("the rerun" in d and "resumed from stage 1" in d for d in details), details


def test_a_hung_step_is_an_error_after_the_timeout_and_its_worker_is_freed(
        chaos_client: Any, workdir: Path) -> None:
    report = check(chaos_client, [p.hangs], tasks=TASKS[:2], timeout=0.5)
    assert [(f.kind, f.task_id, f.detail) for f in report.findings] == [
        ("error", 0, "the step did not finish within 0.5 s"),
        ("error", 1, "the step did not finish within 0.5 s")]
    assert report.seconds < 20  # not the 60 s the protocol would sleep
    assert len(chaos_client.nthreads()) == 2
    assert check(chaos_client, [p.fold]).safe  # the next check finds its workers free


def test_compare_decides_what_equal_means(chaos_client: Any, workdir: Path) -> None:
    assert check(chaos_client, [p.stamps]).kinds() == {"nondeterministic"}
    assert check(chaos_client, [p.stamps], compare=p.same_sequence).safe


def test_extra_watched_paths(chaos_client: Any, workdir: Path, tmp_path_factory: Any) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    tasks = [{"task_id": i, "out_dir": os.fspath(elsewhere)} for i in range(3)]
    assert check(chaos_client, [p.writes_to], tasks=tasks).safe  # not watched: not seen
    report = check(chaos_client, [p.writes_to], tasks=tasks, watch=[elsewhere])
    assert report.kinds() == {"side-effect"}
    assert f"{elsewhere}/decoy-0.pdb" in report.explain()


def test_dask_scratch_space_and_bytecode_are_not_watched(chaos_client: Any,
                                                         workdir: Path) -> None:
    report = check(chaos_client, [p.writes_only_where_dask_and_python_do])
    assert report.safe, report.explain()
    assert any(workdir.glob("dask-scratch-space/*")) and any(workdir.glob("__pycache__/*"))


def test_fan_out_checks_every_decoy(chaos_client: Any, workdir: Path) -> None:
    report = check(chaos_client, [p.two_decoys, p.unseeded], tasks=TASKS[:2])
    assert report.calls == 3 * 2 + 3 * 4  # 2 tasks at step 0, then 2 decoys each
    inputs = sorted(f.detail.split(")")[0] for f in report.findings)
    assert inputs == ["(input (0,", "(input (0,", "(input (1,", "(input (1,"]


def test_its_own_cluster_is_started_and_stopped(workdir: Path) -> None:
    children = {child.pid for child in psutil.Process().children(recursive=True)}
    report = check_preemption_safety([p.fold], TASKS[:2], input="pose", kills=1)
    assert report.safe, report.explain()
    assert len(report.aimed()) == 1
    left = {child.pid for child in psutil.Process().children(recursive=True)
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE} - children
    assert not left, f"processes left running: {left}"


@pytest.mark.parametrize(("arguments", "message"), [
    ({"protocols": []}, "protocols is empty"),
    ({"protocols": [p.fold, "relax"]}, "protocols[1] is str 'relax', not a callable"),
    ({"tasks": []}, "tasks is empty"),
    ({"tasks": [{"task_id": 0}, {"task_id": 0}]}, "task_id 0 at position 1 repeats"),
    ({"tasks": {"task_id": 0}}, "tasks is a single dict"),
    ({"kills": -1}, "kills=-1: use an int >= 0"),
    ({"seed": "x"}, "seed='x': use an int"),
    ({"compare": 3}, "compare=3: pass a function"),
    ({"timeout": 0}, "timeout=0: use a number of seconds > 0"),
    ({"watch": ["/no/such/folder"]}, "watched path '/no/such/folder' does not exist"),
])
def test_bad_arguments_are_refused_with_the_rule_and_the_fix(
        workdir: Path, arguments: dict[str, Any], message: str) -> None:
    call: dict[str, Any] = {"protocols": [p.fold], "tasks": TASKS, "client": object()}
    call.update(arguments)
    with pytest.raises(CheckError) as error:
        check_preemption_safety(**call)
    assert message in str(error.value)


def _name(protocol: Callable[..., Any]) -> str:
    return getattr(protocol, "__qualname__", None) or type(protocol).__qualname__


def test_a_worker_that_finds_another_module_of_the_same_name_gets_the_protocol_by_value(
        chaos_client: Any, workdir: Path, tmp_path_factory: Any, monkeypatch: Any) -> None:
    """Found in the full suite: a worker started while another test's folder was the
    working directory imported that folder's `test_user` instead of this one's."""
    import importlib
    import sys

    stale, fresh = tmp_path_factory.mktemp("stale"), tmp_path_factory.mktemp("fresh")
    (stale / "same_named_protocols.py").write_text(
        "def step(payload, **kwargs):\n    raise RuntimeError('the stale module ran')\n")
    (fresh / "same_named_protocols.py").write_text(
        "def step(payload, **kwargs):\n    return [payload + '|fresh']\n")
    chaos_client.run(_add_to_path, str(stale))  # every worker sees the stale one
    try:
        monkeypatch.syspath_prepend(str(fresh))
        module = importlib.import_module("same_named_protocols")
        report = check(chaos_client, [module.step])
    finally:
        chaos_client.run(_drop_from_path, str(stale))
        sys.modules.pop("same_named_protocols", None)
    assert report.safe, report.explain()
    assert any("pickled by value" in note for note in report.notes), report.notes


def _add_to_path(folder: str) -> None:
    import sys

    sys.path.insert(0, folder)


def _drop_from_path(folder: str) -> None:
    import sys

    sys.path[:] = [entry for entry in sys.path if entry != folder]
