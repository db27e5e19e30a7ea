#!/usr/bin/env bash
# Seeds and starts a PostgreSQL 15 hot standby of the platform's primary on a Debian host.
# Run as root on the standby host; PRIMARY is the primary's address. Prepare the primary first:
#   psql -c "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '…'"   (on the primary)
#   deploy/postgresql/primary.conf and the pg_hba line of pg_hba-primary.conf, restart/reload.
# Then set on every application server:
#   ESANTE_REPLICA_DATABASE_URL=postgres://esante:…@<standby>:5432/esante
set -euo pipefail
PRIMARY=${PRIMARY:?set PRIMARY to the primary host}
SLOT=${SLOT:-esante_standby_1}
VERSION=15
DATA=/var/lib/postgresql/$VERSION/main

# A cluster with Debian's tools (its configuration in /etc/postgresql/15/main), then emptied:
# the standby's data directory is a copy of the primary's.
pg_lsclusters | grep -q "^$VERSION  *main " || pg_createcluster $VERSION main
pg_ctlcluster $VERSION main stop || true
rm -rf "$DATA"
install -d -o postgres -g postgres -m 0700 "$DATA"
install -o postgres -g postgres -m 0644 "$(dirname "$0")/standby.conf" /etc/postgresql/$VERSION/main/conf.d/standby.conf

# The copy: the WAL written meanwhile streamed along (-X stream), a permanent replication slot
# created on the primary (-C -S) so it keeps the WAL the standby has not received, and the
# standby's configuration written (-R: standby.signal, primary_conninfo, primary_slot_name).
# The password comes from ~postgres/.pgpass ("PRIMARY:5432:replication:replicator:…").
runuser -u postgres -- pg_basebackup -h "$PRIMARY" -U replicator -D "$DATA" \
  -X stream -C -S "$SLOT" -R -c fast -P

pg_ctlcluster $VERSION main start
# Within seconds: t (a standby) and a replay position close to the primary's pg_current_wal_lsn().
runuser -u postgres -- psql -Atc "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()"
# On the primary, the standby streams: state 'streaming'.
echo "check on the primary: SELECT client_addr, state, replay_lsn FROM pg_stat_replication;"
# Taking a standby out for good: drop its slot on the primary, or the primary keeps WAL for it
# (up to max_slot_wal_keep_size):  SELECT pg_drop_replication_slot('$SLOT');
