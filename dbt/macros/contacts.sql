{#- The contacts model (models/generated/marts/contacts.sql, written when the load has
    system.contact): one row per current contact with its primary email and phone
    pivoted out of its contact methods, its organization and its location.
      primary email: the first Email method with a value, in the contact's order;
      primary phone: the first Phone method with a value, else the first Mobile one.
    The generator says which of the tables it reads were loaded: a load may hold contacts
    without any contact methods or references yet, or leave system.location out. -#}
{% macro lexful_contacts(methods=true, references=true, locations=true) -%}
{%- set text = dbt.type_string() -%}
with
{%- if methods %}
ranked_methods as (
    select
        asset_id,
        value,
        case when type = 'Email' then 'email' else 'phone' end as kind,
        row_number() over (
            partition by asset_id, case when type = 'Email' then 'email' else 'phone' end
            order by case when type = 'Mobile' then 1 else 0 end, position
        ) as rank_in_kind
    from {{ ref('stg_lexful__system_contact__contact_methods') }}
    where type in ('Email', 'Phone', 'Mobile') and nullif(trim(value), '') is not null
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
{%- else %}
primary_methods as (
    select
        cast(null as {{ text }}) as asset_id,
        cast(null as {{ text }}) as primary_email,
        cast(null as {{ text }}) as primary_phone
    where 1 = 0
),
{%- endif %}

location_references as (
{%- if references %}
    select asset_id, referenced_asset_id as location_id
    from {{ ref('stg_lexful__system_contact__references') }}
    where reference_name = 'location'
{%- else %}
    select cast(null as {{ text }}) as asset_id, cast(null as {{ text }}) as location_id
    where 1 = 0
{%- endif %}
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
{%- if locations %}
    loc.name as location_name,
    loc.city as location_city,
    loc.country as location_country,
    loc.is_archived as location_is_archived,
{%- else %}
    cast(null as {{ text }}) as location_name,
    cast(null as {{ text }}) as location_city,
    cast(null as {{ text }}) as location_country,
    cast(null as boolean) as location_is_archived,
{%- endif %}
    c.created_at,
    c.updated_at
from {{ ref('stg_lexful__system_contact') }} as c
left join primary_methods as m on m.asset_id = c.id
left join {{ ref('base_lexful__organizations') }} as o on o.id = c.organization_id
left join location_references as l on l.asset_id = c.id
{%- if locations %}
left join {{ ref('base_lexful__system_location') }} as loc on loc.id = l.location_id
{%- endif %}
{%- endmacro %}
