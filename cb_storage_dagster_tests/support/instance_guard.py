"""A test must exit every Dagster instance it enters: the guard that finds one it did not.

Entering a ``DagsterInstance`` (``with instance:``, which ``instance_for_test``,
``DagsterInstance.get()`` and a schedule context's ``context.instance`` do) makes its
definitions-state storage the current one in a context variable, and exiting it restores the
previous value. An instance entered and never exited restores that value whenever the garbage
collector finalizes it, possibly during another test, long after the instance it names was
disposed. The next ``materialize`` then fails with "Attempted to resolve undefined
DagsterInstance weakref" (a CI run failed so). ``build_schedule_context(instance=...)`` is the
usual culprit: the context enters an instance of its own from ``instance.get_ref()`` and exits
it only when the context is used as ``with build_schedule_context(...) as context:``.

The guard wraps ``DagsterInstance.__enter__`` / ``__exit__`` (it calls the originals) and
records where each instance entered during a test's call was entered; the conftest fails the
test if one is still open after its teardown, naming the line that entered it. There is one
guard per process, :data:`INSTANCES`, installed when this module is first imported.
"""

from __future__ import annotations

import itertools
import traceback
from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterInstance

_ENTRY = "_cb_storage_guard_entry"


@dataclass
class InstanceGuard:
    """Which instances entered while :meth:`watching` are not exited yet, and where they were entered."""

    open_entries: dict[int, str] = field(default_factory=dict)
    watching: bool = False
    _numbers: Any = field(default_factory=itertools.count)

    @classmethod
    def install(cls) -> InstanceGuard:
        """Wrap ``DagsterInstance.__enter__`` / ``__exit__`` once and return the guard."""
        guard = cls()
        enter, exit_ = DagsterInstance.__enter__, DagsterInstance.__exit__

        def guarded_enter(instance: DagsterInstance) -> DagsterInstance:
            if guard.watching:
                number = next(guard._numbers)
                instance.__dict__[_ENTRY] = number
                guard.open_entries[number] = "".join(traceback.format_stack(limit=12)[:-1])
            return enter(instance)

        def guarded_exit(instance: DagsterInstance, *exc: Any) -> None:
            guard.open_entries.pop(instance.__dict__.pop(_ENTRY, None), None)
            return exit_(instance, *exc)

        DagsterInstance.__enter__ = guarded_enter  # type: ignore[method-assign]
        DagsterInstance.__exit__ = guarded_exit  # type: ignore[method-assign]
        return guard

    def left_open(self) -> list[str]:
        """Where the instances still open were entered (then forgets them: one report each)."""
        stacks = list(self.open_entries.values())
        self.open_entries.clear()
        return stacks


INSTANCES = InstanceGuard.install()
