-- Migrations are numbered by role so both can add files without clashing:
-- 00xx shared, 01xx account provider, 02xx recovery provider. Never edit an applied one.
create table dar_schema_info (
    schema_info_id integer primary key check (schema_info_id = 1),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
insert into dar_schema_info (schema_info_id) values (1);
