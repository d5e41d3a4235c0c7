"""The websocket transport: Zaqar's websocket protocol (zaqar-v2-api.md §10)
on API Gateway's WebSocket API.

`protocol` handles the $connect, $default and $disconnect events; `frames`
reads requests and writes answers; `dispatch` maps each action to the shared
action code; `connections` keeps connections in DynamoDB and posts to them;
`push` delivers queue messages to connections that subscribed.
"""
