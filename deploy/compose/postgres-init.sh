#!/bin/sh
# First start of the postgres container: the role Runway connects as owns its database and is not
# a superuser (libs/database refuses nothing else, but a superuser is more than it needs).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pw="$RUNWAY_DB_PASSWORD" <<'SQL'
CREATE ROLE runway LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
ALTER DATABASE runway OWNER TO runway;
ALTER SCHEMA public OWNER TO runway;
SQL
