#!/bin/sh
# Nightly backup: the PostgreSQL database (custom format, restorable with pg_restore) and the instance folder
# (uploaded files, the SQLite file of a small install). Keep the encryption keys apart from these files: a backup
# without ORDERLOOM_DATA_KEYS cannot be read, and one stored with them protects nothing.
#   DATABASE_URL=postgresql://orderloom@db/orderloom BACKUP_DIR=/var/backups/orderloom deploy/backup.sh
set -eu
: "${DATABASE_URL:?set DATABASE_URL}"
BACKUP_DIR=${BACKUP_DIR:-/var/backups/orderloom}
INSTANCE_DIR=${INSTANCE_DIR:-$(dirname "$0")/../instance}
KEEP_DAYS=${KEEP_DAYS:-14}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$BACKUP_DIR"
pg_dump --format=custom --no-owner --dbname="$(echo "$DATABASE_URL" | sed 's/+psycopg//')" \
    --file="$BACKUP_DIR/orderloom-$stamp.dump"
if [ -d "$INSTANCE_DIR" ]; then
    tar -czf "$BACKUP_DIR/instance-$stamp.tar.gz" -C "$INSTANCE_DIR" .
fi
find "$BACKUP_DIR" \( -name 'orderloom-*.dump' -o -name 'instance-*.tar.gz' \) -mtime +"$KEEP_DAYS" -delete
echo "backup written: $BACKUP_DIR/orderloom-$stamp.dump"
