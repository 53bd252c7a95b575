"""Current-state views over a Parquet dataset written by the filesystem destination.

dlt's filesystem destination cannot merge plain Parquet: every run appends the records it
read, so a record edited three times has three rows. These DuckDB views answer "what is
the current state of each record": the newest version of each ``id`` (latest load, then
latest ``updated_at``), and for child tables only the rows that belong to that version.

    python -m lexful_source.parquet_views lexful_data/lexful --database lexful_current.duckdb

writes a small DuckDB file holding only views over the Parquet files (no copy of the data).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

from .settings import MARKER, PARENT_KEY, PURGED


def _files(dataset_dir: Path, table: str) -> str:
    return str(dataset_dir / table / "*.parquet").replace("'", "''")


def _columns(con: duckdb.DuckDBPyConnection, files: str) -> list[str]:
    rows = con.execute(f"describe select * from read_parquet('{files}', union_by_name=true)")
    return [r[0] for r in rows.fetchall()]


def create_views(con: duckdb.DuckDBPyConnection, dataset_dir: str | Path, schema: str) -> list[str]:
    """Create one view per table of the dataset in ``schema``; returns the view names."""
    root = Path(dataset_dir).resolve()  # views must work wherever the database is opened
    tables = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.parquet")))
    tables = [t for t in tables if not t.startswith("_dlt")]
    con.execute(f'create schema if not exists "{schema}"')
    columns = {t: _columns(con, _files(root, t)) for t in tables}
    for table in tables:
        cols, source = columns[table], f"read_parquet('{_files(root, table)}', union_by_name=true)"
        parent = table.rsplit("__", 1)[0] if "__" in table else None
        if "id" in cols and "updated_at" in cols and "_dlt_load_id" in cols:
            body = _latest_version(source, PURGED in cols)
        elif PARENT_KEY in cols and parent in columns and MARKER in cols:
            parent_cols = columns[parent]
            parents = _latest_version(_src(root, parent), PURGED in parent_cols)
            body = _children_of_latest(source, cols, parents)
        else:
            body = f"select * from {source}"
        con.execute(f'create or replace view "{schema}"."{table}" as {body}')
    return tables


def _src(root: Path, table: str) -> str:
    return f"read_parquet('{_files(root, table)}', union_by_name=true)"


def _latest_version(source: str, purged: bool = True) -> str:
    """Each id's newest version; with ``purged``, ids whose newest version is a tombstone
    (reconcile found them gone from Lexful) are left out too."""
    gone = f" and not coalesce({PURGED}, false)" if purged else ""
    return (
        f"select * exclude (_version) from (select *, row_number() over (partition by id "
        f"order by _dlt_load_id desc, updated_at desc nulls first) as _version from {source}) "
        f"where _version = 1{gone}"
    )


def _children_of_latest(source: str, cols: list[str], parents: str) -> str:
    keep = ", ".join(f'c."{c}"' for c in cols if c != MARKER)
    return (
        f"select {keep} from {source} as c join ({parents}) as p "
        f"on c.{PARENT_KEY} = p.id and c._dlt_load_id = p._dlt_load_id "
        f"where not coalesce(c.{MARKER}, false)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", help="the dataset folder, e.g. lexful_data/lexful")
    parser.add_argument("--database", default="lexful_current.duckdb")
    parser.add_argument("--schema", default="lexful")
    args = parser.parse_args(argv)
    with duckdb.connect(args.database) as con:
        views = create_views(con, args.dataset_dir, args.schema)
    print(f"{len(views)} views in {args.database}, schema {args.schema}: {', '.join(views)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
