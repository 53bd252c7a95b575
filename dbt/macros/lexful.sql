{#- The SQL of the models written from the loaded catalogue (models/generated/): each of
    them calls one of these, so a type's models follow its table's columns as they grow,
    and every asset type is modelled by the same code. -#}

{#- When dlt loaded a row: _dlt_load_id is the load's start as seconds since the epoch. -#}
{% macro lexful_loaded_at(column='_dlt_load_id') -%}
    to_timestamp(cast({{ column }} as {{ dbt.type_numeric() }}))
{%- endmacro %}

{#- A model that reads the pipeline's tables is a table, not a view: Postgres refuses to
    drop a table a view depends on, and a --full-refresh of the pipeline drops its tables.
    Models built on these can be views. -#}
{% macro lexful_reads_loaded_tables() -%}
    {{ config(materialized='table') }}
{%- endmacro %}

{#- A relation's columns, less dlt's bookkeeping (_dlt_*), this source's markers
    (_lexful_*) and those named. At parse time dbt only needs the model's dependencies,
    and a relation not built yet (`dbt compile` on an empty warehouse) has no columns:
    both get none. -#}
{% macro lexful_columns(relation, excluded=[]) -%}
    {%- set names = [] -%}
    {%- if execute -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- set name = column.name | lower -%}
            {%- if not name.startswith('_dlt_') and not name.startswith('_lexful_') and name not in excluded -%}
                {%- do names.append(name) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- return(names) -}}
{%- endmacro %}

{%- macro _lexful_select(names) -%}
    {%- for name in names %}
    {{ adapter.quote(name) }}{{ "," if not loop.last }}
    {%- else %}
    *
    {%- endfor -%}
{%- endmacro %}

{#- A column list for a base model: each loaded column, then the columns the model adds.
    A property named like an added column (a custom `is_archived`, say) keeps its value
    as property_<name>, so it neither replaces nor hides the model's own. -#}
{%- macro _lexful_loaded_columns(relation, excluded, added) -%}
    {%- set names = lexful_columns(relation, excluded) -%}
    {%- for name in names %}
        {%- if name in added and 'property_' ~ name in names -%}
            {{ exceptions.raise_compiler_error(
                relation ~ " has both " ~ name ~ " and property_" ~ name ~ ": the model adds a "
                ~ name ~ " column of its own and cannot rename the first; rename one in Lexful"
            ) }}
        {%- endif %}
    {{ adapter.quote(name) }}{% if name in added %} as {{ adapter.quote('property_' ~ name) }}{% endif %},
    {%- endfor %}
{%- endmacro %}

{#- Every record of an asset type, archived ones flagged: Lexful's deleted_at is when a
    record was archived. -#}
{% macro lexful_base_asset(asset_type, table) -%}
{{ lexful_reads_loaded_tables() }}
{%- set relation = source('lexful_assets', table) -%}
select
    '{{ asset_type }}' as asset_type,
    {{- _lexful_loaded_columns(relation, ['deleted_at'], ['asset_type', 'archived_at', 'is_archived', 'loaded_at']) }}
    deleted_at as archived_at,
    deleted_at is not null as is_archived,
    {{ lexful_loaded_at() }} as loaded_at
from {{ relation }}
{%- endmacro %}

{#- A base model's current records, without the two columns that say they are. -#}
{% macro lexful_current(base_model) -%}
{%- set base = ref(base_model) -%}
select {{ _lexful_select(lexful_columns(base, ['archived_at', 'is_archived'])) }}
from {{ base }}
where not is_archived
{%- endmacro %}

{#- The items of one list property (or the references) of every record of a type. Rows
    marked _lexful_replaces_children only clear a parent's old items in Parquet datasets;
    DuckDB and Postgres never store them, and they are left out here all the same. -#}
{% macro lexful_base_child(table) -%}
{{ lexful_reads_loaded_tables() }}
{%- set relation = source('lexful_assets', table) -%}
select
    {{- _lexful_loaded_columns(relation, [], ['loaded_at']) }}
    {{ lexful_loaded_at() }} as loaded_at
from {{ relation }}
where not coalesce(_lexful_replaces_children, false)
{%- endmacro %}

{#- The items of current records only. -#}
{% macro lexful_current_child(base_model, current_parent_model) -%}
select child.*
from {{ ref(base_model) }} as child
where child.asset_id in (select id from {{ ref(current_parent_model) }})
{%- endmacro %}
