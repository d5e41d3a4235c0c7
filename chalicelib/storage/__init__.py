"""Storage: the contract (base.py: an interface per resource, its results;
errors.py: its refusals) and the DynamoDB driver that implements it, a
module per store, built from settings by dynamodb.driver. Keeps the data
model consistent with conditional writes; callers (the actions) have already
checked that input is well formed."""
