#!/bin/sh
# Makes ./secrets/ for compose.yaml once: random passwords and keys, files mode 0600. Keep them out
# of version control (secrets/ is ignored) and back them up: RUNWAY_MASTER_KEY decrypts every
# stored secret, and without it configurations cannot be read again.
set -eu
cd "$(dirname "$0")"
if [ -e secrets/runway.env ]; then echo "secrets/ exists already; remove it to start over" >&2; exit 1; fi
umask 077
mkdir -p secrets
rand() { openssl rand -hex 24; }
NATS_RUNWAY=$(rand) NATS_WORKER=$(rand) NATS_ADMIN=$(rand) PG_SUPER=$(rand) PG_RUNWAY=$(rand)
MASTER_KEY=$(openssl rand -base64 32)
DB="postgres://runway:${PG_RUNWAY}@postgres:5432/runway"
cat > secrets/nats.env <<EOT
NATS_RUNWAY_PASSWORD=${NATS_RUNWAY}
NATS_WORKER_PASSWORD=${NATS_WORKER}
NATS_ADMIN_PASSWORD=${NATS_ADMIN}
EOT
cat > secrets/postgres.env <<EOT
POSTGRES_PASSWORD=${PG_SUPER}
POSTGRES_DB=runway
RUNWAY_DB_PASSWORD=${PG_RUNWAY}
EOT
cat > secrets/runway.env <<EOT
NATS_USER=runway
NATS_PASSWORD=${NATS_RUNWAY}
DATABASE_URL=${DB}
RUNWAY_MASTER_KEY=${MASTER_KEY}
EOT
cat > secrets/worker.env <<EOT
NATS_USER=worker
NATS_PASSWORD=${NATS_WORKER}
DATABASE_URL=${DB}
RUNWAY_MASTER_KEY=${MASTER_KEY}
EOT
echo "secrets written to $(pwd)/secrets/"
