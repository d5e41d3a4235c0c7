"""python-zaqarclient, unchanged, as the end-to-end tests drive it."""
from zaqarclient.queues import client

from conftest import CLIENT_ID


def noauth_client(url, project, client_uuid=CLIENT_ID):
    """A v2 client of the runner at `url`, acting for `project` in noauth."""
    return client.Client(url, version=2, conf={
        "client_uuid": client_uuid,
        "auth_opts": {"backend": "noauth", "options": {"os_project_id": project}}})
