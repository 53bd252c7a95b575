{{ lexful_reads_loaded_tables() }}
select
    id,
    name,
    description,
    is_system,
    created_at,
    updated_at
from {{ source('lexful', 'organization_types') }}
where deleted_at is null
