-- One row per current contact: its primary email and phone pivoted out of its contact
-- methods, its organization and its location.
--   primary email: the first Email method in the contact's list;
--   primary phone: the first Phone method, or the first Mobile one when it has no Phone.
-- It needs system.contact and system.location in the load; for a load without them, run
-- dbt with --vars '{lexful_contacts: false}'.
{{ config(enabled=var('lexful_contacts', true)) }}

with ranked_methods as (
    select
        asset_id,
        value,
        case when type = 'Email' then 'email' else 'phone' end as kind,
        row_number() over (
            partition by asset_id, case when type = 'Email' then 'email' else 'phone' end
            order by case when type = 'Mobile' then 1 else 0 end, position
        ) as rank_in_kind
    from {{ ref('stg_lexful__system_contact__contact_methods') }}
    where type in ('Email', 'Phone', 'Mobile')
),

primary_methods as (
    select
        asset_id,
        max(case when kind = 'email' then value end) as primary_email,
        max(case when kind = 'phone' then value end) as primary_phone
    from ranked_methods
    where rank_in_kind = 1
    group by asset_id
),

locations as (
    select asset_id, referenced_asset_id as location_id
    from {{ ref('stg_lexful__system_contact__references') }}
    where reference_name = 'location'
)

select
    c.id,
    c.name,
    c.first_name,
    c.last_name,
    c.title,
    c.contact_type,
    c.important,
    c.preferred_contact_method,
    m.primary_email,
    m.primary_phone,
    c.organization_id,
    o.name as organization_name,
    l.location_id,
    loc.name as location_name,
    loc.city as location_city,
    loc.country as location_country,
    c.created_at,
    c.updated_at
from {{ ref('stg_lexful__system_contact') }} as c
left join primary_methods as m on m.asset_id = c.id
left join {{ ref('base_lexful__organizations') }} as o on o.id = c.organization_id
left join locations as l on l.asset_id = c.id
left join {{ ref('stg_lexful__system_location') }} as loc on loc.id = l.location_id
