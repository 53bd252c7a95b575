-- Every current asset of every loaded type, one row each, with its organization.
select
    a.asset_type,
    a.id,
    a.name,
    a.organization_id,
    o.name as organization_name,
    a.created_at,
    a.updated_at,
    a.loaded_at
from {{ ref('assets_with_archived') }} as a
left join {{ ref('base_lexful__organizations') }} as o on o.id = a.organization_id
where not a.is_archived
