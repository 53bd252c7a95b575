{{ lexful_reads_loaded_tables() }}
-- The catalogue: system and custom asset types, one row each.
select
    id,
    name as asset_type,
    display_name,
    description,
    is_system,
    version,
    created_at,
    updated_at
from {{ source('lexful', 'asset_types') }}
where deleted_at is null
