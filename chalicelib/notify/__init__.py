"""Notifications: delivering queue messages to subscribers.

New messages reach `stream.handle` from the messages table's stream; each one
goes to every subscription of its queue (`delivery`), by webhook or by mail
(`transports`), with Zaqar's payloads (`payloads`). Failed attempts are
retried as the retry policy says (`policy`): immediate retries at once, later
ones saved with a due time and made by the scheduled `retries.run`.
Webhook targets are checked (`targets`) when a subscription is made and again
at each delivery; confirmation requests carry a signed URL (`signing`).
A trust+ subscriber's webhook carries a token of the Keystone trust made
when it subscribed (`trusts`).
"""
