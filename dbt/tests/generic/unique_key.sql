{#- No two rows share these columns: the key of a child table, (asset_id, position). -#}
{% test unique_key(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows_with_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
