"""What subscribers receive: Zaqar's notification and confirmation payloads,
and how a payload goes out as a webhook request or as a mail."""
import json
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from chalicelib import signed_urls

NOTIFICATION = "Notification"
SUBSCRIBE = "SubscriptionConfirmation"
UNSUBSCRIBE = "UnsubscribeConfirmation"
MESSAGE_TOKEN = '"$zaqar_message$"'  # in `post_data`, quotes included
# Zaqar's default confirmation mail templates: {0} queue, {1} project, {2} link.
CONFIRMATION_MAILS = {
    SUBSCRIBE: ("Zaqar Notification - Subscription Confirmation",
                "You have chosen to subscribe to the queue: {0}. This queue belongs to "
                "project: {1}. To confirm this subscription, click or visit this link "
                "below: {2}"),
    UNSUBSCRIBE: ("Zaqar Notification - Unsubscribe Confirmation",
                  "You have unsubscribed successfully to the queue: {0}. This queue "
                  "belongs to project: {1}. To resubscribe this subscription, click or "
                  "visit this link below: {2}"),
}


def notification(queue_name, body, ttl, delay=None):
    """A message as subscribers get it. Zaqar sends no id and no href; `delay`
    only on queues with a default delay."""
    payload = {"ttl": ttl, "body": body}
    if delay is not None:
        payload["delay"] = delay
    payload.update(Message_Type=NOTIFICATION, queue_name=queue_name)
    return payload


def confirmation(queue_name, subscription_id, project, expires_ms, key, unsubscribe=False,
                 kind="queues"):
    """The request to confirm a subscription (or the notice that it was
    unconfirmed), with a signed URL that allows PUT on its confirm path (of
    a queue, or of a topic: `kind` "topics")."""
    path = f"/v2/{kind}/{queue_name}/subscriptions/{subscription_id}/confirm"
    signed = signed_urls.sign(key, [path], ["PUT"], project, expires_ms)
    if unsubscribe:
        kind = UNSUBSCRIBE
        text = (f"You have unsubscribed successfully to the queue: {queue_name}, "
                "you can resubscribe it by using confirmed=True.")
    else:
        kind = SUBSCRIBE
        text = f"You have chosen to subscribe to the queue: {queue_name}"
    return {"Message_Type": kind, "Message": text,
            "URL-Signature": signed["signature"], "URL-Methods": "PUT",
            "URL-Paths": path, "X-Project-ID": project, "URL-Expires": signed["expires"],
            "SubscribeBody": {"confirmed": True}, "UnsubscribeBody": {"confirmed": False},
            "queue_name": queue_name}


def webhook_request(options, payload):
    """(headers, body) of the POST: the payload as JSON, or the subscription's
    `post_data` with the token "$zaqar_message$" replaced by that JSON."""
    headers = {"Content-Type": "application/json"}
    extra = options.get("post_headers")
    if isinstance(extra, dict):
        headers.update({str(name): str(value) for name, value in extra.items()})
    text = json.dumps(payload)
    template = options.get("post_data")
    if template is not None:
        # An object holding the token as a value works too, once serialized.
        template = template if isinstance(template, str) else json.dumps(template)
        text = template.replace(MESSAGE_TOKEN, text)
    return headers, text.encode()


def mail(subscriber, options, payload, settings):
    """(sender, address, subject, text) of the mail for this payload.

    A notification is the payload as JSON, from `options.from` (else the
    service's SES sender), with the subject of the URI's `subject` parameter,
    else `options.subject`. A confirmation follows Zaqar's templates and links
    to the `external_confirmation_url` page. ValueError if it cannot be made.
    """
    parts = urlsplit(subscriber)
    address = unquote(parts.path)
    kind = payload.get("Message_Type")
    if kind in CONFIRMATION_MAILS:
        if not settings.external_confirmation_url:
            raise ValueError("external_confirmation_url is not set: mail subscriptions "
                             "cannot be confirmed")
        subject, template = CONFIRMATION_MAILS[kind]
        text = template.format(payload["queue_name"], payload["X-Project-ID"],
                               _confirmation_link(payload, settings))
        sender = settings.ses_from_address
    else:
        query = {name.lower(): values for name, values in parse_qs(parts.query).items()}
        subject = query["subject"][0] if "subject" in query else options.get("subject", "")
        text = json.dumps(payload)
        sender = options.get("from") or settings.ses_from_address
    if not sender:
        raise ValueError("no sender: set the subscription's `from` option or SES_FROM_ADDRESS")
    return sender, address, str(subject), text


def _confirmation_link(payload, settings):
    # Zaqar's parameters; Url (the API's confirm URL) stays empty, as in a
    # Zaqar without a service catalog.
    query = urlencode({"Signature": payload["URL-Signature"],
                       "Methods": payload["URL-Methods"], "Paths": payload["URL-Paths"],
                       "Project": payload["X-Project-ID"],
                       "Expires": payload["URL-Expires"], "Url": "",
                       "Queue": payload["queue_name"]})
    return f"{settings.external_confirmation_url}?{query}"
