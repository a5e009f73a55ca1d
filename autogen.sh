#!/bin/sh
# Generates ./configure from configure.ac (a git checkout does not carry it).
set -e
cd "$(dirname "$0")"
autoreconf -fi
