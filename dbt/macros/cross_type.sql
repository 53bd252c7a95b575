{#- The models that span asset types (models/generated/marts/): the generator lists the
    loaded types' models, these macros union them. An account with no asset records yet
    gets empty models of the same shape. -#}

{#- Every asset of every loaded type, archived ones flagged. base_models: the
    base_lexful__<table> model of each type. -#}
{% macro lexful_assets_with_archived(base_models) -%}
{%- set text, ts = dbt.type_string(), dbt.type_timestamp() -%}
{%- set parts = [] -%}
{%- for model in base_models -%}
    {%- do parts.append(
        "select asset_type, id, organization_id, name, created_at, updated_at, archived_at, "
        ~ "is_archived, loaded_at\nfrom " ~ ref(model)
    ) -%}
{%- endfor -%}
{{ _lexful_union_all(parts, [
    ('asset_type', text), ('id', text), ('organization_id', text), ('name', text),
    ('created_at', ts), ('updated_at', ts), ('archived_at', ts), ('is_archived', 'boolean'),
    ('loaded_at', ts),
]) }}
{%- endmacro %}

{#- Every reference of every current asset, with where it points: a target archived in
    Lexful, or not loaded at all (purged, or of a type the load left out), is reported in
    target_status. reference_models: (asset type, stg_lexful__<table>__references) pairs. -#}
{% macro lexful_asset_references(reference_models) -%}
{%- set text = dbt.type_string() -%}
{%- set parts = [] -%}
{%- for asset_type, model in reference_models -%}
    {%- do parts.append(
        "select '" ~ asset_type ~ "' as source_asset_type, asset_id as source_asset_id, "
        ~ "reference_name, position, referenced_asset_id as target_asset_id\nfrom " ~ ref(model)
    ) -%}
{%- endfor -%}
with refs as (
{{ _lexful_union_all(parts, [
    ('source_asset_type', text), ('source_asset_id', text), ('reference_name', text),
    ('position', dbt.type_bigint()), ('target_asset_id', text),
]) }}
)

select
    refs.source_asset_type,
    refs.source_asset_id,
    source.name as source_asset_name,
    refs.reference_name,
    refs.position,
    refs.target_asset_id,
    target.asset_type as target_asset_type,
    target.name as target_asset_name,
    case
        when target.id is null then 'not loaded'
        when target.is_archived then 'archived'
        else 'current'
    end as target_status
from refs
join {{ ref('assets_with_archived') }} as source on source.id = refs.source_asset_id
left join {{ ref('assets_with_archived') }} as target on target.id = refs.target_asset_id
{%- endmacro %}

{#- The selects, one after another; with none, a select of no rows with these (name,
    type) columns. -#}
{%- macro _lexful_union_all(parts, columns) -%}
{%- if parts -%}
{{ parts | join('\nunion all\n') }}
{%- else -%}
select
    {%- for name, type in columns %}
    cast(null as {{ type }}) as {{ name }}{{ "," if not loop.last }}
    {%- endfor %}
where 1 = 0
{%- endif -%}
{%- endmacro %}
