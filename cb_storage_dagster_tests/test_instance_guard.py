"""The guard that fails a test leaving a Dagster instance entered (support/instance_guard.py).

A schedule context built from an instance enters an instance of its own on first use of
``context.instance``; used without ``with`` it is never exited, and the garbage collector later
resets Dagster's current definitions-state storage to one whose instance is gone (a CI run failed
with "Attempted to resolve undefined DagsterInstance weakref").
"""

from __future__ import annotations

import dagster as dg

from cb_storage_dagster_tests.support.instance_guard import INSTANCES


def test_a_schedule_context_used_without_with_leaves_its_instance_entered_and_the_guard_names_the_line():
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance)
        context.instance.get_dynamic_partitions("instruments")
        open_now = INSTANCES.left_open()  # the test's own instance, and the context's
        context.__exit__(None, None, None)  # what `with` would have done, before the outer instance exits
    [entered_by_the_context] = [stack for stack in open_now if "schedule_definition.py" in stack]
    assert "test_a_schedule_context_used_without_with" in entered_by_the_context
    assert len(open_now) == 2


def test_a_schedule_context_used_with_with_exits_its_instance():
    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(instance=instance) as context:
            context.instance.get_dynamic_partitions("instruments")
    assert INSTANCES.left_open() == []
