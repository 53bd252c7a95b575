"""What every notebook here needs: the loaded DuckDB file, its asset types, its assets and
where their references point.

Kept beside the notebooks (Jupyter runs them from this folder), so that each notebook
shows its analysis rather than its plumbing. It reads the tables the pipeline loaded, not
the dbt models, so the notebooks work right after ``make demo``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import duckdb
import pandas as pd

from lexful_source.schema import table_name

# The demo load's file (`make demo`); LEXFUL_DUCKDB_PATH points elsewhere, LEXFUL_DATASET
# names another dataset than `lexful`.
DATABASE = Path(os.environ.get("LEXFUL_DUCKDB_PATH", "../lexful_demo_warehouse.duckdb"))
DATASET = os.environ.get("LEXFUL_DATASET", "lexful")

# Lexful names are unicode; matplotlib's default font lacks CJK and emoji (drawn as boxes).
warnings.filterwarnings("ignore", message="Glyph .* missing from font")


class Warehouse:
    """A read-only connection: DuckDB lets one process write a file or several read it, so
    ``close()`` it before the next load of that file."""

    def __init__(self, database: Path = DATABASE, dataset: str = DATASET) -> None:
        if not database.is_file():
            raise FileNotFoundError(f"{database.resolve()} does not exist: run `make demo` first")
        self.con = duckdb.connect(str(database), read_only=True)
        self.con.execute(f"set search_path = '{dataset}'")

    def sql(self, query: str) -> pd.DataFrame:
        return self.con.sql(query).df()

    def tables(self) -> set[str]:
        return set(
            self.sql("""
                select table_name from information_schema.tables
                where table_schema = current_schema()
            """).table_name
        )

    def catalogue(self) -> pd.DataFrame:
        """The asset types that have a table, each with its table's name (by dlt's naming:
        system.contact -> system_contact), custom types included."""
        types = self.sql("""
            select name as asset_type, display_name, is_system
            from asset_types
            where deleted_at is null
            order by name
        """)
        types["table"] = types.asset_type.map(table_name)
        return types[types.table.isin(self.tables())].reset_index(drop=True)

    def assets(self) -> pd.DataFrame:
        """Every asset of every type, archived ones too (is_archived)."""
        found = self.sql(
            " union all ".join(
                f"""select '{row.asset_type}' as asset_type, id, organization_id, name,
                           created_at, updated_at, deleted_at
                    from {row.table}"""
                for row in self.catalogue().itertuples()
            )
        )
        found["is_archived"] = found.deleted_at.notna()
        return found

    def references(self) -> pd.DataFrame:
        """Every reference of every current asset, and where it points: ``target`` is
        current, archived, or not loaded (purged, or of a type the load left out)."""
        tables = self.tables()
        parts = [
            f"""select '{row.asset_type}' as source_type, r.reference_name, r.asset_id,
                       r.referenced_asset_id
                from {row.table}__references r join {row.table} s on s.id = r.asset_id
                where s.deleted_at is null"""
            for row in self.catalogue().itertuples()
            if f"{row.table}__references" in tables
        ]
        columns = ["source_type", "reference_name", "asset_id", "referenced_asset_id"]
        found = self.sql(" union all ".join(parts)) if parts else pd.DataFrame(columns=columns)
        targets = self.assets()[["id", "asset_type", "is_archived"]].rename(
            columns={"id": "referenced_asset_id", "asset_type": "target_type"}
        )
        found = found.merge(targets, on="referenced_asset_id", how="left")
        found["target"] = "current"
        found.loc[found.is_archived.fillna(False).astype(bool), "target"] = "archived"
        found.loc[found.target_type.isna(), "target"] = "not loaded"
        return found.drop(columns="is_archived")

    def close(self) -> None:
        self.con.close()
