"""The sweep: what deleted queues leave is removed, whatever the queue's
history, and no job stops the sweep for the others."""
from chalicelib.actions import queues
from chalicelib.storage import sweeper
from chalicelib.storage.models import SWEEP_JOBS_KEY, MessageRecord, SweepJob, queue_key
from contract.support import post


def jobs_of(project):
    return [job.sk for job in SweepJob.query(SWEEP_JOBS_KEY)
            if job.sk.startswith(project + "/")]


def stored_items(project, queue):
    return list(MessageRecord.query(queue_key(project, queue)))


def test_a_queue_created_again_before_any_post_does_not_stop_the_sweep(ctx, clock):
    queues.create(ctx, "again", {})
    queues.delete(ctx, "again")
    queues.create(ctx, "again", {})  # floor 0: nothing can sit below it
    post(ctx, "gone", 3)
    queues.delete(ctx, "gone")

    run = sweeper.run(clock.now + 10_000, ctx.settings)

    assert run.failed == 0
    assert jobs_of(ctx.project) == []
    assert [item.sk for item in stored_items(ctx.project, "gone")
            if item.sk.startswith("m#")] == []
