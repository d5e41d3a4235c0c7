"""DynamoDB-backed storage. Keeps the data model consistent with conditional
writes; callers (the actions) have already checked that input is well formed."""
