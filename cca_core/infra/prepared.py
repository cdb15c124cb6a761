"""The few statements every task runs (its INSERT, claim and finish), executed on psycopg
directly.

SQLAlchemy builds and compiles each statement; running it through a ``Connection`` then costs
more CPU in SQLAlchemy's execution machinery than Postgres spends on it (measured on the
task INSERT: 0.38 ms through ``Connection.execute``, 0.18 ms this way, pool checkout
included). Parameters, Python-side column defaults and results go through the same type
processors SQLAlchemy applies; a driver error becomes SQLAlchemy's exception, and a lost
connection replaces the pool, as SQLAlchemy does. On a connection inside a transaction the
statement runs through SQLAlchemy, so that it joins the transaction. psycopg prepares a
statement on the server after a few runs on a connection, as it does under SQLAlchemy (the
URL's ``prepare_threshold`` decides).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import psycopg
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError, NoResultFound, StatementError
from sqlalchemy.sql.dml import UpdateBase

_DIALECT = PGDialect_psycopg()
# Statements are compiled per set of parameter names; a caller passing ever new sets (never
# cca's: its callers pass fixed ones) would otherwise grow the cache without end.
_MAX_SHAPES = 32
_Process = Callable[[Any], Any]


class PreparedStatement:
    """One INSERT, UPDATE or DELETE, compiled once per set of parameter names.

    Rows of its RETURNING clause come back as dicts keyed by the columns' keys; a statement
    without one returns none.
    """

    def __init__(self, statement: UpdateBase) -> None:
        self._statement = statement
        self._keys = [str(column.key) for column in statement.exported_columns]
        self._types = [column.type for column in statement.exported_columns]
        self._compiled: dict[frozenset[str], _Compiled] = {}

    def first(self, connection: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """Run the statement with ``params``; its first returned row, None if none.

        Raises sqlalchemy.exc.DBAPIError (the subclass for the driver's error) as
        ``Connection.execute`` would, and KeyError naming a parameter the statement needs
        but ``params`` lacks.
        """
        driver = connection.connection.driver_connection
        if not isinstance(driver, psycopg.Connection) or not driver.autocommit:
            row = connection.execute(self._statement, dict(params)).first()
            return None if row is None else dict(row._mapping)
        names = frozenset(params)
        compiled = self._compiled.get(names)
        if compiled is None:
            if len(self._compiled) >= _MAX_SHAPES:
                self._compiled.clear()
            compiled = self._compiled[names] = _Compiled(self._statement, names, self._types)
        try:
            values = compiled.run(driver, params)
        except psycopg.Error as exc:
            raise _sqlalchemy_error(connection, exc, compiled.sql) from exc
        return None if values is None else dict(zip(self._keys, values, strict=True))

    def one(self, connection: Connection, params: Mapping[str, Any]) -> dict[str, Any]:
        """Like ``first``; raises sqlalchemy.exc.NoResultFound if no row was returned."""
        row = self.first(connection, params)
        if row is None:
            raise NoResultFound("the statement returned no row")
        return row


class _Compiled:
    """The SQL for one set of parameter names, with what turns parameters into the driver's
    values and the driver's results into the columns' Python values."""

    def __init__(self, statement: UpdateBase, names: frozenset[str], types: list[Any]) -> None:
        compiled = statement.compile(dialect=_DIALECT, column_keys=sorted(names))
        missing = sorted(name for bind, name in compiled.bind_names.items()
                         if bind.required and name not in names)
        if missing:
            raise KeyError(f"missing parameters: {', '.join(missing)}")
        self.sql = str(compiled)
        self._defaults = {column.key: _default_maker(column.key, column.default)
                          for column in compiled.insert_prefetch if column.key not in names}
        self._constants = {name: value for name, value in compiled.params.items()
                           if name not in names and name not in self._defaults}
        # A name used twice is one parameter: processed once.
        self._binds = list({name: process for bind, name in compiled.bind_names.items()
                            if (process := bind.type.dialect_impl(_DIALECT)
                                .bind_processor(_DIALECT))}.items())
        self._types = types
        self._results: list[tuple[int, _Process]] | None = None

    def run(self, driver: psycopg.Connection[Any], params: Mapping[str, Any]) -> list[Any] | None:
        values = {**self._constants, **params}
        for name, make in self._defaults.items():
            values[name] = make()
        for name, to_driver in self._binds:
            values[name] = to_driver(values[name])
        with driver.cursor() as cursor:
            cursor.execute(self.sql, values)
            row = cursor.fetchone() if self._types else None
            if row is None:
                return None
            if self._results is None:
                self._results = _result_processors(self._types, cursor.description or [])
        found = list(row)
        for index, to_python in self._results:
            found[index] = to_python(found[index])
        return found


def _default_maker(name: str, default: Any) -> Callable[[], Any]:
    """A function giving the Python-side default of column ``name`` for a new row."""
    if default.is_scalar:
        value = default.arg
        return lambda: value
    if default.is_callable:
        return lambda: default.arg(None)
    raise TypeError(f"column {name}: a prepared statement supports scalar and callable defaults")


def _result_processors(types: list[Any], description: list[Any]) -> list[tuple[int, _Process]]:
    processors = []
    for index, (type_, column) in enumerate(zip(types, description, strict=True)):
        process = type_.dialect_impl(_DIALECT).result_processor(_DIALECT, column.type_code)
        if process is not None:
            processors.append((index, process))
    return processors


def _sqlalchemy_error(connection: Connection, exc: psycopg.Error, sql: str) -> StatementError:
    """What ``Connection.execute`` raises for ``exc``; a lost connection is invalidated and
    the pool's other connections, made to the same server, are replaced."""
    lost = connection.dialect.is_disconnect(cast(Any, exc), connection.connection, None)
    if lost:
        connection.invalidate(exc)
        connection.engine.dispose()
    return DBAPIError.instance(sql, None, exc, psycopg.Error, hide_parameters=True,
                               connection_invalidated=lost, dialect=connection.dialect)
