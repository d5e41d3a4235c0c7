"""Storage: the contract (base.py: an interface per resource, its results;
errors.py: its refusals) and the DynamoDB driver that implements it, a
module per store, built from settings by dynamodb.driver. Keeps the data
model consistent with conditional writes; callers (the actions) have already
checked that input is well formed."""

# The settings storage was last pointed at, and how the models follow them
# (storage.models registers it once imported).
_settings = None
_apply = None


def configure(settings):
    """Point the stores at the tables, region and endpoint `settings` name;
    each invocation's entry point calls it. The models are pointed now if
    imported, else when they are: an invocation that touches no table never
    imports pynamodb and botocore (~150 ms of a cold start)."""
    global _settings
    _settings = settings
    if _apply is not None:
        _apply(settings)


def follow(apply):
    """`apply(settings)` points the models: now, and on every configure."""
    global _apply
    _apply = apply
    if _settings is not None:
        apply(_settings)


def messages_stream_arn(settings):
    """The stream the app's stream handlers read. Chalice takes it when the
    app is imported, and freezes it at package time; infra/package.py swaps
    it for the stack's table stream, and the local runner for the local
    table's stream."""
    return (f"arn:aws:dynamodb:{settings.aws_region}:000000000000:"
            f"table/{settings.messages_table}/stream/latest")
