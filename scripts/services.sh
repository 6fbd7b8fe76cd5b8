#!/usr/bin/env bash
# Makes sure what the tests need is installed and running on this machine: PostgreSQL on
# 127.0.0.1:5432 (user postgres, trust, database test), Mosquitto on 127.0.0.1:1883, Chromium and
# Node for the browser test. Installs Debian packages only when something is missing.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=no
apt_install() {
  if [ "$apt_updated" = no ]; then
    as_root apt-get update -qq
    apt_updated=yes
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for_port() {
  for _ in $(seq 1 60); do
    port_open "$1" && return 0
    sleep 0.5
  done
  echo "services: nothing listens on 127.0.0.1:$1 after 30 s" >&2
  return 1
}

# PostgreSQL
if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "services: installing PostgreSQL"
    apt_install postgresql postgresql-client
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    # Tests connect as postgres over TCP without a password.
    as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    as_root sed -i '1i local all all trust' "$hba"
  fi
  echo "services: starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for_port 5432
fi
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
  psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null
fi

# Mosquitto
if ! command -v mosquitto >/dev/null 2>&1; then
  echo "services: installing Mosquitto"
  apt_install mosquitto mosquitto-clients
fi
if ! port_open 1883; then
  echo "services: starting Mosquitto"
  as_root mkdir -p /run/mosquitto /var/lib/mosquitto /var/log/mosquitto
  as_root chown -R mosquitto: /run/mosquitto /var/lib/mosquitto /var/log/mosquitto 2>/dev/null || true
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    as_root mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    as_root mosquitto -d -p 1883
  fi
  wait_for_port 1883
fi

# Browser test: Debian's Chromium and Node with npm.
if ! command -v chromium >/dev/null 2>&1; then
  echo "services: installing Chromium"
  apt_install chromium
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "services: installing Node.js"
  apt_install nodejs npm
fi
