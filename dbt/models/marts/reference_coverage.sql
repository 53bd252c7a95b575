-- How much of the reference graph resolves: per source type and reference, how many
-- references point to a current asset, an archived one, or one not loaded.
select
    source_asset_type,
    reference_name,
    count(*) as references_total,
    sum(case when target_status = 'current' then 1 else 0 end) as to_current,
    sum(case when target_status = 'archived' then 1 else 0 end) as to_archived,
    sum(case when target_status = 'not loaded' then 1 else 0 end) as to_not_loaded
from {{ ref('asset_references') }}
group by source_asset_type, reference_name
