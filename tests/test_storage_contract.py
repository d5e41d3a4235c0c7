"""The DynamoDB driver implements the storage contract (storage/base.py):
each of its stores has every method of its interface, with the same
parameters, defaults and annotations. What the methods do is specified by
tests/contract."""
import dataclasses
import inspect
import types
import typing

from chalicelib.config import get_settings
from chalicelib.storage import base, dynamodb, queues


def interface_methods(protocol):
    """{name: function} of what the interface declares."""
    return {name: value for name, value in vars(protocol).items()
            if inspect.isfunction(value) and not name.startswith("_")}


def mismatches(protocol, store):
    """How `store` (a module, or any object) departs from `protocol`: methods
    it lacks, and methods whose signature differs from the declared one."""
    found = []
    for name, declared in interface_methods(protocol).items():
        implemented = getattr(store, name, None)
        if not callable(implemented):
            found.append(f"{protocol.__name__}.{name} is missing")
            continue
        wanted = inspect.signature(declared)
        wanted = wanted.replace(parameters=list(wanted.parameters.values())[1:])  # self
        if inspect.signature(implemented) != wanted:
            found.append(f"{protocol.__name__}.{name}: {inspect.signature(implemented)} "
                         f"is not {wanted}")
    return found


def stores_of(driver):
    """[(interface, store)] for each field of the driver."""
    hints = typing.get_type_hints(base.Driver)
    return [(hints[field.name], getattr(driver, field.name))
            for field in dataclasses.fields(base.Driver)]


def test_every_dynamodb_store_implements_its_interface():
    stores = stores_of(dynamodb.driver(get_settings()))
    assert {interface for interface, _ in stores} == {
        base.QueueStore, base.MessageStore, base.ListingStore, base.ClaimStore,
        base.StatsStore, base.SubscriptionStore, base.ConnectionStore, base.KeyStore,
        base.PoolStore, base.FlavorStore}
    for interface, store in stores:
        assert interface_methods(interface)
        assert mismatches(interface, store) == []


def test_the_check_finds_a_missing_method_and_a_changed_signature():
    def list_page(project, marker=None, limit=20):  # another default, parameters lost
        return []
    incomplete = types.ModuleType("incomplete")
    incomplete.create, incomplete.list_page = queues.create, list_page
    found = mismatches(base.QueueStore, incomplete)
    assert "QueueStore.get_metadata is missing" in found
    assert "QueueStore.count is missing" in found
    assert any(line.startswith("QueueStore.list_page: ") for line in found)
    assert not any(line.startswith("QueueStore.create") for line in found)


def test_the_driver_is_built_once_for_equal_settings():
    settings = get_settings()
    assert dynamodb.driver(settings) is dynamodb.driver(dataclasses.replace(settings))
