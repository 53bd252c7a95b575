-- How much of the reference graph resolves: per source type and reference, how many
-- references point to a current asset, an archived one, or one not loaded.
select
    source_asset_type,
    reference_name,
    count(*) as references_total,
    count(*) filter (where target_status = 'current') as to_current,
    count(*) filter (where target_status = 'archived') as to_archived,
    count(*) filter (where target_status = 'not loaded') as to_not_loaded
from {{ ref('asset_references') }}
group by source_asset_type, reference_name
