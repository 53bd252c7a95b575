{{ lexful_reads_loaded_tables() }}
-- Every organization, archived ones flagged: for history, and for assets whose
-- organization was archived after them.
select
    id,
    name,
    slug,
    type as organization_type,
    status,
    is_primary,
    parent_id,
    asset_management,
    labels,
    description,
    website_url,
    logo_url,
    notes,
    alert,
    created_at,
    updated_at,
    created_by,
    updated_by,
    deleted_at as archived_at,
    deleted_at is not null as is_archived,
    {{ lexful_loaded_at() }} as loaded_at
from {{ source('lexful', 'organizations') }}
