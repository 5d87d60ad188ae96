#!/bin/sh
# The image's entrypoint. With no arguments: `crossroads serve` on $CROSSROADS_HOST:$CROSSROADS_PORT
# (these override the config's server.host and server.port) with the config file
# /etc/crossroads/crossroads.yaml when it exists, else the built-in config. Setting
# $CROSSROADS_CONFIG_FILE names another file, which must then exist. $CROSSROADS_WORKERS, if
# set, is --workers. With arguments: that crossroads command (`validate FILE`, `route ...`).
set -eu
if [ "$#" -gt 0 ]; then
    exec crossroads "$@"
fi
set -- serve --host "${CROSSROADS_HOST:-0.0.0.0}" --port "${CROSSROADS_PORT:-8400}"
if [ -n "${CROSSROADS_CONFIG_FILE:-}" ]; then
    if [ ! -f "$CROSSROADS_CONFIG_FILE" ]; then
        echo "crossroads-entrypoint: CROSSROADS_CONFIG_FILE=$CROSSROADS_CONFIG_FILE is not a file; mount the config there or unset the variable" >&2
        exit 64
    fi
    set -- "$@" -c "$CROSSROADS_CONFIG_FILE"
elif [ -f /etc/crossroads/crossroads.yaml ]; then
    set -- "$@" -c /etc/crossroads/crossroads.yaml
fi
if [ -n "${CROSSROADS_WORKERS:-}" ]; then
    set -- "$@" --workers "$CROSSROADS_WORKERS"
fi
exec crossroads "$@"
