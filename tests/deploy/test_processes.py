"""The `processes` backend: real `dask scheduler` / `dask worker --nanny` command lines over
TLS; preemption with notice on whole process trees; the notice plugin; an existing
cluster reached through --scheduler-address."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from distributed.security import Security

from chaos import AtStep, ChaosCluster, Fault, FaultSchedule, Workload, check_history, run_schedule
from chaos.cli import main as chaos_main
from chaos.errors import ClusterError
from chaos.harness import Inflictor, process_state
from chaos.harness.backends import AddressBackend, ProcessesBackend
from chaos.harness.backends.base import ClosingClient
from resilience import install_notice_handler, uninstall_notice_handler
from resilience.notice import PLUGIN_NAME


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as file:
        return file.read().replace(b"\0", b" ").decode()


def _gone(pid: int) -> bool:
    return process_state(pid) in (None, "Z", "X")


def test_the_cluster_is_command_line_processes_and_refuses_a_client_without_credentials(
        deploy):
    backend = deploy.backend
    assert backend.address.startswith("tls://")
    commands = {name: _cmdline(pid) for name, pid in backend.pids().items()}
    assert "-m dask scheduler" in commands["scheduler"]
    workers = [c for name, c in commands.items() if name != "scheduler"]
    assert len(workers) == 3 and all("-m dask worker" in c and "--nanny" in c for c in workers)
    assert deploy.client.submit(sum, [1, 2]).result(timeout=30) == 3

    # Refused clients, closed at once (`ClosingClient`) rather than left to the garbage
    # collector. A certificate the cluster's CA did not sign: the TLS handshake fails.
    with pytest.raises((OSError, TimeoutError)):
        ClosingClient(backend.address, security=Security.temporary(), timeout=3)
    with pytest.raises((OSError, TimeoutError)):  # plain TCP to the TLS port
        ClosingClient(backend.address.replace("tls://", "tcp://"), timeout=3)
    with pytest.raises(TypeError, match="TLS expects"):  # no credentials at all
        ClosingClient(backend.address, timeout=3)


def _event_loop_threads() -> int:
    return sum(t.name == "IO loop" for t in threading.enumerate())  # a Client's, in Dask


def test_a_connection_refused_leaves_no_client_half_open(deploy):
    """CI, once: a `processes` backend's client failed to start (`assert loop is not None`,
    after 10 s). Dask leaves a client whose start failed 'connecting', its event loop
    running; when the garbage collector closed one (an earlier test's refused connection)
    in the event loop thread of a client being started, that close waited on the lock
    the start held until the start gave up."""
    before = _event_loop_threads()
    with pytest.raises(ClusterError, match="could not connect"):
        AddressBackend(deploy.backend.address, timeout=3)  # TLS, no credentials given
    assert _event_loop_threads() == before, "the refused client's event loop still runs"


def test_a_restarted_scheduler_whose_port_is_not_yet_free_is_started_again(deploy):
    """A deploy campaign in CI, once: after a `scheduler-kill` no scheduler came back, and
    the run waited out its 60 s. One way a new `dask scheduler` exits at once: its port
    still taken. Here a squatter holds it until a new scheduler has exited so once."""
    backend = deploy.backend
    port = int(backend.address.rsplit(":", 1)[1])
    log = backend.folder / "scheduler.log"

    def refusals() -> int:
        return log.read_text(errors="replace").count("Address already in use")

    before = refusals()

    def refused() -> bool:
        return refusals() > before

    pid, error = deploy.kill_scheduler(restart_after=0.3)  # the campaign's way
    assert pid is not None and error is None
    # Held until a new scheduler has failed on it: a fixed second was over before a
    # `dask scheduler` on a loaded CI host had even imported Dask, and it bound at once.
    with _squatting(port, until=refused, timeout=20):
        started = time.monotonic()
        deploy.settle(timeout=30)  # the restart first, then the whole fleet back
    assert time.monotonic() - started < 25
    assert deploy.client.submit(sum, [1, 2]).result(timeout=30) == 3
    assert refused(), "no scheduler started while the port was taken: nothing was tested"


@contextlib.contextmanager
def _squatting(port: int, until: Callable[[], bool], timeout: float) -> Iterator[None]:
    """Hold `port` until `until()` (or `timeout`) with a socket that binds and does not
    listen, so the
    client's reconnects are refused (a listener that closed them mid-handshake left the
    client deaf). It binds with SO_REUSEADDR, past the killed scheduler's connections in
    TIME_WAIT (a plain bind failed in CI), then clears it: the scheduler binds with it
    too, and two such sockets may share a port while neither listens."""
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    done = threading.Event()

    def hold() -> None:
        deadline = time.monotonic() + timeout
        while not done.is_set() and not until() and time.monotonic() < deadline:
            time.sleep(0.05)
        squatter.close()

    holder = threading.Thread(target=hold, daemon=True, name="port-squatter")
    holder.start()
    try:
        yield
    finally:
        done.set()
        holder.join(timeout=5)
        squatter.close()


def test_preempt_sigterms_the_whole_tree_and_sigkills_what_outlives_the_notice(deploy):
    victim = next(iter(deploy.refresh().workers.values()))
    # A child of the worker that ignores SIGTERM, as a stubborn protocol subprocess would.
    stubborn = deploy.client.run(_start_stubborn_child, workers=[victim.address])[victim.address]
    tree = deploy.backend.worker_tree(victim.pid)
    nanny = tree[0]
    assert victim.pid in tree and stubborn in tree and nanny != victim.pid
    assert "-m dask worker" in _cmdline(nanny)

    inflictor = Inflictor(deploy.client, local_signals=True,
                          worker_tree=deploy.backend.worker_tree)
    landing = inflictor.inflict("preempt", victim, notice=1.0)

    assert landing.error is None and landing.mechanism == "local"
    assert landing.killed_after_notice is True  # the stubborn child outlived the notice
    assert all(_gone(pid) for pid in tree), [p for p in tree if not _gone(p)]
    assert time.time() - landing.fired_at >= 1.0
    snapshot = deploy.settle(timeout=60)  # refilled with a new `dask worker` process
    assert len(snapshot.workers) == 3 and victim.address not in snapshot.workers


def _start_stubborn_child() -> int:
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(120)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    return child.pid


# A retirement plus a `dask worker` tree's exit take about 3 s on a loaded 2-core host
# (the worker process alone lingers some 2 s after it closed); a cloud's or SLURM's
# notice is 30 s. 10 s leaves room on a busy machine and costs nothing when it passes.
NOTICE = 10.0


@pytest.mark.parametrize("plugin", [False, True], ids=["without-plugin", "with-plugin"])
def test_the_notice_plugin_moves_data_off_a_preempted_worker(deploy, plugin):
    client = deploy.client
    if plugin:
        install_notice_handler(client, notice=NOTICE)
    try:
        victim = next(iter(deploy.refresh().workers.values()))
        [held] = client.scatter([b"x" * 100_000], workers=[victim.address], hash=False)
        time.sleep(0.3)  # the plugin is set up in the worker and the nanny
        landing = Inflictor(client, local_signals=True,
                            worker_tree=deploy.backend.worker_tree).inflict(
            "preempt", victim, notice=NOTICE)
        assert landing.error is None
        if plugin:
            # Retired within the notice: the data moved, no SIGKILL was needed.
            assert landing.killed_after_notice is False
            assert client.gather(held, errors="raise") == b"x" * 100_000
        else:
            assert held.status in ("lost", "cancelled", "error") or _lost(client, held)
        held.release()
    finally:
        if plugin:
            uninstall_notice_handler(client)


def test_a_run_with_the_notice_setting_has_the_plugin_for_that_run_only(deploy):
    # What the deploy campaign's `notice=2` cells do: install the plugin for the run.
    workload = Workload(n_tasks=4, n_steps=2, payload_bytes=10_000, step_seconds=0.3, seed=3)
    schedule = FaultSchedule((Fault("preempt", AtStep(step=0, fraction=0.5, task="t1"),
                                    notice=NOTICE),))
    record = run_schedule(schedule, "resilience",
                          {"task_registry": "memory", "notice": NOTICE}, workload, deploy,
                          timeout=60)
    [fault] = record.events("fault")
    assert record.events("run-start")[0]["config"]["notice"] == NOTICE
    assert fault["killed_after_notice"] is False
    # Retired, not killed: the scheduler expected the removal and lost nothing (without
    # the plugin the nanny kills the worker: an unexpected removal, its data lost).
    [removed] = [e for e in record.events("worker-removed") if e["worker"] == fault["worker"]]
    assert (removed["expected"], removed["lost_keys"]) == (True, []), removed
    assert check_history(record.history, workload.oracle()).valid
    plugins = deploy.client.run_on_scheduler(
        lambda dask_scheduler: [*dask_scheduler.worker_plugins, *dask_scheduler.nanny_plugins])
    assert PLUGIN_NAME not in plugins  # gone after the run: the cluster is shared


def _lost(client, future) -> bool:
    try:
        client.gather(future, errors="raise")  # would block on a lost scattered key
    except Exception:
        return True
    return False


def test_a_preemption_in_a_run_is_recorded_with_its_notice_and_everything_delivered_once(
        deploy):
    workload = Workload(n_tasks=4, n_steps=2, payload_bytes=10_000, step_seconds=0.05, seed=3)
    schedule = FaultSchedule((Fault("preempt", AtStep(step=0, fraction=0.5, task="t1"),
                                    notice=1.0),))
    record = run_schedule(schedule, "resilience", {"task_registry": "memory"}, workload, deploy,
                          timeout=60)
    [fault] = record.events("fault")
    assert (fault["kind"], fault["notice"], fault["mechanism"]) == ("preempt", 1.0, "local")
    assert fault["landed_at"] is not None and fault["noticed_at"] is not None
    assert record.history[0]["cluster"]["backend"] == "processes"
    verdict = check_history(record.history, workload.oracle())
    assert verdict.outcome == "valid", verdict


def test_the_library_runs_against_an_existing_cluster_through_scheduler_address(
        deploy, tmp_path):
    tls = deploy.backend.tls
    address = ["--cluster", "address", "--scheduler-address", deploy.backend.address]
    credentials = ["--tls-ca-file", str(tls.ca_file), "--tls-cert", str(tls.cert),
                   "--tls-key", str(tls.key)]
    try:
        code = chaos_main(["run", *address, *credentials, "--target", "resilience",
                           "--registry", "memory", "--faults", "1", "--kinds", "sigkill",
                           "--tasks", "4", "--step-seconds", "0.05", "--seed", "2",
                           "--out", str(tmp_path / "run")])
        assert code == 0
        assert chaos_main(["run", *address, "--out", str(tmp_path / "refused")]) == 2
    finally:
        deploy._hook_scheduler()  # the other client's close removed the shared plugin


def test_the_address_backend_refuses_workers_without_a_nanny():
    backend = ProcessesBackend(0, tls=False)  # a scheduler only
    worker = subprocess.Popen([sys.executable, "-m", "dask", "worker", backend.address,
                               "--no-nanny", "--nthreads", "1", "--no-dashboard"],
                              start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        backend.client.wait_for_workers(1, timeout=60)
        with pytest.raises(ClusterError, match="without a nanny"):
            ChaosCluster.open("address", address=backend.address)
    finally:
        worker.kill()
        worker.wait(timeout=10)
        backend.close()


def test_the_address_backend_refuses_workers_that_cannot_import_chaos(tmp_path):
    # A worker whose environment lacks this project: `import chaos` fails there.
    poison = tmp_path / "without_chaos.py"
    poison.write_text("import sys\nsys.modules['chaos'] = None  # import chaos: ImportError\n")
    backend = ProcessesBackend(0, tls=False)  # a scheduler only
    worker = subprocess.Popen([sys.executable, "-m", "dask", "worker", backend.address,
                               "--nanny", "--nthreads", "1", "--no-dashboard",
                               "--preload", str(poison)],
                              start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        backend.client.wait_for_workers(1, timeout=60)
        with pytest.raises(ClusterError,
                           match=r"^worker tcp://\S+.* cannot import `chaos`; install"):
            ChaosCluster.open("address", address=backend.address)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the nanny and its worker
        worker.wait(timeout=10)
        backend.close()
