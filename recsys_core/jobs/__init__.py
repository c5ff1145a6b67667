"""Background runs and tasks: a run store in the workspace catalog, a worker, child processes.

Public API (``from recsys_core.jobs import api``): :func:`~recsys_core.jobs.api.submit`,
``submit_sweep``, ``get_run``, ``list_runs``, ``cancel``, ``retry``, ``events``, ``wait``,
``delete_run``, ``run_inline`` (execute a queued run in the calling process),
``submit_task`` (an identical active task is reused) / ``find_task`` / ``get_task`` /
``list_tasks`` / ``cancel_task``, ``worker_status``,
``worker_alive``, ``ensure_worker``. A run's files are read with
:class:`recsys_core.jobs.artifacts.RunArtifacts`; background task kinds are registered in
:data:`recsys_core.jobs.tasks.TASKS`.

Modules: ``spec`` (RunSpec, RunRecord, statuses), ``store`` (SQL), ``api``, ``worker`` (claims,
slots, cancel deadlines, recovery), ``executor`` (the backend boundary: LocalExecutor),
``child`` (the per-run process: events, cancellation, outcome), ``runner`` (``execute_run``: the
run function and the artifact layout), ``artifacts``, ``tasks``, ``plugins``.

Why not huey
------------
The issue prefers a well-kept task-queue library with SQLite storage. huey 3 (``SqliteHuey`` and
its consumer) was evaluated against what the runs need, and a small queue on the runs table
itself was chosen instead:

- *Source of truth.* huey keeps its own queue and result store; the UI needs the runs table
  (status, progress, error, versions) anyway, so with huey every state would live twice and
  could disagree after a crash (huey's message gone, the run row still ``running``). Here the
  claim *is* the status change: ``UPDATE runs SET status='running' ... WHERE id=? AND
  status='queued' RETURNING ...`` inside ``BEGIN IMMEDIATE`` (``store.claim_run``).
- *One process per run.* huey's consumer executes tasks in long-lived thread, greenlet or
  process workers; a task that segfaults, is OOM-killed or hangs in a CUDA call takes that
  worker (and its later tasks) with it, and huey has no per-task child process. We would spawn
  the child from inside the huey task anyway, keeping huey only as a list of ids.
- *Cancellation within 2 s, by force.* huey's ``revoke`` only prevents a task that has not
  started; it cannot stop a running one. Our worker owns each child's process group and kills
  it 1.5 s after a cancel request when the cooperative stop did not happen.
- *Device slots.* huey has one pool size; "N CPU runs and at most one run per GPU, ``auto``
  meaning a free GPU" needs a claim that looks at the run's device, which is a WHERE clause on
  our table but not expressible as a huey queue without one queue and consumer per device.
- *kill -9 and restarts.* A huey task that was dequeued when the consumer died is lost (or
  re-run, with a retry policy); we need it recorded as ``interrupted`` and the catalog intact.
  An ``flock`` held by the worker (released by the kernel on any death) lets the next worker
  know for certain that rows left ``running`` are orphans.

What remains hand-written is small and tested (claim, heartbeat, reap, cancel deadline,
recovery: ``worker.py`` and ``store.py``); SQLite itself provides the atomicity (WAL, busy timeout,
short ``BEGIN IMMEDIATE`` transactions). huey is therefore not used by the jobs package.
"""
