{{ lexful_reads_loaded_tables() }}
select
    id,
    email,
    first_name,
    last_name,
    role,
    created_at,
    updated_at
from {{ source('lexful', 'users') }}
where deleted_at is null
