#!/usr/bin/env bash
# Regenerate the real-frame LiDAR table: train the four configs (one torch
# thread each, two at a time), then print the table from their metrics.json.
# About 15 min per run on one idle core (axial; plain is ~4x faster).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1
PY=${PYTHON:-python}
mkdir -p runs
$PY train/lidar.py train/lidar/axial.yaml > runs/lidar_axial.log 2>&1 &
$PY train/lidar.py train/lidar/local_global.yaml > runs/lidar_local_global.log 2>&1
wait
$PY train/lidar.py train/lidar/plain.yaml > runs/lidar_plain.log 2>&1 &
$PY train/lidar.py train/lidar/plain_long.yaml > runs/lidar_plain_long.log 2>&1
wait
$PY train/lidar_table.py runs/lidar_plain runs/lidar_local_global runs/lidar_axial \
    runs/lidar_plain_long
