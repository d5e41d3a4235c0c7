"""Zaqar's webhook retry policy (`_retry_policy`), as a schedule of delays.

A failed attempt is followed by the next after `delay_after(policy, attempts)`
seconds; None means the retries are used up. The phases, in order: retries
with no delay, retries `minimum_delay` apart, a backoff series from
`minimum_delay` towards `maximum_delay`, retries `maximum_delay` apart.
"""
import math

DEFAULTS = {
    "retries_with_no_delay": 3,
    "minimum_delay_retries": 3,
    "minimum_delay": 5,
    "maximum_delay": 30,
    "maximum_delay_retries": 3,
    "retry_backoff_function": "linear",
    "ignore_subscription_override": False,
}
BACKOFF_STEP = 5  # seconds; Zaqar's "linear interval"


def effective(subscription_options, queue_metadata):
    """The policy that applies to a subscription, defaults filled in: its own
    `_retry_policy`, else its queue's; the queue's when either policy sets
    `ignore_subscription_override`."""
    own = subscription_options.get("_retry_policy") or {}
    queue = queue_metadata.get("_retry_policy") or {}
    if own.get("ignore_subscription_override") or queue.get("ignore_subscription_override"):
        chosen = queue
    else:
        chosen = own or queue
    return dict(DEFAULTS, **{key: value for key, value in chosen.items()
                             if key in DEFAULTS and value is not None})


def _backoff(function, low, high):
    """(count, point) of Zaqar's backoff series from `low` towards `high`:
    point(i) is the i-th delay, 0-based. The formulas are Zaqar's own, so the
    delays match its to the second."""
    if function == "linear":
        return len(range(low, high, BACKOFF_STEP)), lambda i: low + BACKOFF_STEP * i
    count = int((high - low) / BACKOFF_STEP)
    if count < 2:  # the formulas need two points; validation keeps them apart
        return count, lambda i: low
    k = math.pow(10, math.log10(high / low) / (count - 1))
    if function == "geometric":
        return count, lambda i: int(low * math.pow(k, i))
    if function == "exponential":
        return count, lambda i: int(low / k * math.pow(k, i + 1))
    d = 2.0 * (high - low) / (count * (count - 1))  # arithmetic
    return count, lambda i: int(low + i * (i + 1) * d / 2)


def _phases(policy):
    # Validation treats a falsy delay as unset, and so does delivery.
    low = policy["minimum_delay"] or DEFAULTS["minimum_delay"]
    high = policy["maximum_delay"] or DEFAULTS["maximum_delay"]
    return [
        (policy["retries_with_no_delay"], lambda i: 0),
        (policy["minimum_delay_retries"], lambda i: low),
        _backoff(policy["retry_backoff_function"], low, high),
        (policy["maximum_delay_retries"], lambda i: high),
    ]


def delay_after(policy, attempts):
    """Seconds to wait before attempt number `attempts + 1`, or None when
    `attempts` (1 or more) used up the policy."""
    retry = attempts - 1
    for count, delay in _phases(policy):
        count = max(0, count)
        if retry < count:
            return delay(retry)
        retry -= count
    return None
