"""Messages (to be filled in with the messages issue)."""


def delete_queue_contents(project, queue):
    """Remove the queue's messages and claims."""
