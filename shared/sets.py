"""Set-based SQL for batches: one statement for a whole set of rows, whatever its size, on PostgreSQL and SQLite.

    among(Shipment.waybill_no, numbers)                 # a WHERE: PG `= ANY(:array)`, SQLite `IN (...)`
    update_rows(Shipment, rows, ["tracking_step"])      # rows: dicts with "id" and the columns to set
    insert_new_rows(TrackingEvent, rows, conflict=[...], returning=["shipment_id"])

On PostgreSQL every value list travels as one array parameter (`unnest`), so the SQL text is the same for 5 rows
as for 5,000 (prepared once, nothing to compile per call); on SQLite an UPDATE takes a VALUES list of parameters
typed as the columns, an INSERT parameter sets of one statement. On PostgreSQL the values are sent as they are,
without the columns' per-value conversion: aware UTC datetimes for UTCDateTime columns, plain values otherwise
(no JSON or encrypted columns here).
"""
from sqlalchemy import any_, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.util import identity_key
from sqlalchemy.types import TypeDecorator

from shared.extensions import db

SQLITE_MAX_VALUES = 32_766  # bound values per statement (SQLite 3.32 and later)


def _postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def among(column, values):
    """`column` is one of `values`: one array parameter on PostgreSQL, an expanding IN list on SQLite."""
    values = list(values)
    if _postgres():
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(_plain_type(column.type))))
    return column.in_(values)


def _plain_type(column_type):
    return column_type.impl if isinstance(column_type, TypeDecorator) else column_type


def _array_of(column, dialect) -> str:
    return f"{_plain_type(column.type).compile(dialect=dialect)}[]"


def _unnest(table, names: list[str], dialect) -> str:
    """`unnest(CAST(:a AS type[]), ...)`: one array parameter per column."""
    return "unnest(" + ", ".join(f"CAST(:{name} AS {_array_of(table.c[name], dialect)})" for name in names) + ")"


def _arrays(rows: list[dict], names: list[str]) -> dict:
    return {name: [row[name] for row in rows] for name in names}


def update_rows(model, rows: list[dict], columns: list[str], match: tuple[str, ...] = ("id",),
                where: str | None = None, increment: str | None = None, returning: list[str] | None = None,
                expire: bool = True) -> list:
    """Set `columns` of each row with one UPDATE; a row is found by its `match` columns (each dict holds those
    and the columns to set; the first match column is the primary key).

    A match on more than the key (e.g. the version read) and `where` (SQL on the table's own columns, e.g.
    "status IN ('shipped')") leave a row changed meanwhile alone; `increment` names a column raised by one (a
    version); `returning` names columns returned for the rows updated. Objects of `model` already in the session
    for these rows are expired (read afresh when next used) unless `expire=False`: the caller sets what it wrote.
    """
    if not rows:
        return []
    table = model.__table__
    names = [*match, *(name for name in columns if name not in match)]
    assignments = [f"{name} = v.{name}" for name in columns] + ([f"{increment} = {table.name}.{increment} + 1"]
                                                                 if increment else [])
    conditions = " AND ".join(f"{table.name}.{name} = v.{name}" for name in match) + (
        f" AND {table.name}.{where}" if where else "")
    tail = " RETURNING " + ", ".join(f"{table.name}.{name}" for name in returning) if returning else ""
    typed = (lambda statement: statement.columns(*(table.c[name] for name in returning))) if returning else (
        lambda statement: statement)  # typed results: what comes back is what the columns read (aware times)
    if _postgres():
        dialect = db.session.get_bind().dialect
        values = f"{_unnest(table, names, dialect)} AS v({', '.join(names)})"
        statement = text(f"UPDATE {table.name} SET {', '.join(assignments)} FROM {values} WHERE {conditions}{tail}")
        result = db.session.execute(typed(statement), _arrays(rows, names))
        returned = result.all() if returning else []
    else:  # one statement too (per 32,766 values, SQLite's limit): a VALUES list of parameters typed as the columns
        returned = []
        per_statement = SQLITE_MAX_VALUES // len(names)
        for start in range(0, len(rows), per_statement):
            binds, tuples = [], []
            for index, row in enumerate(rows[start:start + per_statement]):
                tuples.append("(" + ", ".join(f":v{index}_{position}" for position in range(len(names))) + ")")
                binds += [bindparam(f"v{index}_{position}", row[name], type_=table.c[name].type)
                          for position, name in enumerate(names)]
            aliases = ", ".join(f"column{position + 1} AS {name}" for position, name in enumerate(names))
            values = f"(SELECT {aliases} FROM (VALUES {', '.join(tuples)})) AS v"
            statement = text(f"UPDATE {table.name} SET {', '.join(assignments)} FROM {values} WHERE {conditions}"
                             f"{tail}").bindparams(*binds)
            result = db.session.execute(typed(statement))
            returned += result.all() if returning else []
    if expire:
        _expire(model, [row[match[0]] for row in rows])
    return returned


def _expire(model, ids) -> None:
    session = db.session()
    for row_id in ids:
        obj = session.identity_map.get(identity_key(model, row_id))
        if obj is not None:
            session.expire(obj)


def insert_new_rows(model, rows: list[dict], conflict: list[str], returning: list[str] | None = None) -> list:
    """Insert rows with one statement, skipping any that would break the unique `conflict` columns (ON CONFLICT
    DO NOTHING); returns `returning` of the rows actually inserted."""
    if not rows:
        return []
    table = model.__table__
    names = list(rows[0])
    if _postgres():
        dialect = db.session.get_bind().dialect
        sql = (f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM {_unnest(table, names, dialect)}"
               f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
               + (" RETURNING " + ", ".join(returning) if returning else ""))
        statement = text(sql)
        if returning:
            statement = statement.columns(*(table.c[name] for name in returning))
        result = db.session.execute(statement, _arrays(rows, names))
        return result.all() if returning else []
    statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)
    if returning:
        statement = statement.returning(*(table.c[name] for name in returning))
        return db.session.execute(statement, rows).all()
    db.session.execute(statement, rows)
    return []
