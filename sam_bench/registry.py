"""Name -> factory registries for models, datasets, tasks and format readers.

Everything a user can name on the command line is looked up here, so adding a model, a task or a
format reader is one decorated function or class, never a new branch in an if-chain.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import ConfigError
from .suggest import unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise ConfigError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = entry
            self._help[name] = help or (getattr(entry, "__doc__", "") or "").strip().split("\n")[0]
            return entry

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(unknown_name(self.kind, name, self._entries)) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self, name: str) -> str:
        return self._help.get(name, "")

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


MODELS: Registry = Registry("model")
TASKS: Registry = Registry("task")
READERS: Registry = Registry("dataset reader")
