#!/usr/bin/env bash
# A real segmentation in, end to end: the nucleus label image that the StarDist package ships
# (stardist/data/images/mask2d.tif: 512 x 512, 125 hand-annotated nuclei of the 2018 Data
# Science Bowl, Caicedo et al., Nature Methods 16, 1247 (2019); BSD-3-Clause) -> four 256 x 256
# tiles as a stack -> spinsim import (downsampled 4x: 64 x 64) -> train a Neural Hamiltonian with
# the cell-sorting closure -> simulate it from the data's states -> evaluate, export, render
# (docs/neural-cpm.md).
#
#   scripts/nuclei_example.sh DIR [STEPS SWEEPS]
#
# STEPS (default 100) training steps, SWEEPS (default 10) MCS simulated. The label image comes
# from an installed stardist (`pip install --no-deps stardist`: only its data file is read,
# nothing of it is imported) or from MASK=path/to/mask2d.tif. SPINSIM (default: spinsim) and
# PYTHON (default: python) name the programs. A step whose output exists is skipped.
set -euo pipefail
dir=$(realpath -m "$1"); steps=${2:-100}; sweeps=${3:-10}
spinsim=${SPINSIM:-spinsim}; python=${PYTHON:-python}
if [ -z "${MASK:-}" ]; then
    MASK=$($python -c 'import importlib.util as u, pathlib as p; s = u.find_spec("stardist")
print(p.Path(s.origin).parent / "data/images/mask2d.tif" if s else "")')
fi
if [ -z "$MASK" ] || [ ! -e "$MASK" ]; then
    echo "nuclei_example.sh: no mask2d.tif: pip install --no-deps stardist, or give MASK=path" >&2
    exit 2
fi
mkdir -p "$dir" && cd "$dir"

# four tiles of the 512 x 512 field as a stack of frames (the nuclei the cuts split stay, in pieces)
[ -e nuclei.tif ] || $python - "$MASK" <<'PY'
import sys
import numpy as np
import tifffile

mask = tifffile.imread(sys.argv[1])
tiles = [mask[y : y + 256, x : x + 256] for y in (0, 256) for x in (0, 256)]
tifffile.imwrite("nuclei.tif", np.stack(tiles), photometric="minisblack")
PY
[ -e nuclei.h5 ] || $spinsim import nuclei.tif downsample=4 type_names=[medium,nucleus] output=nuclei.h5
[ -e train.ckpt.pt ] || $spinsim train data=nuclei.h5 model.hamiltonian=closure "steps=$steps" batch=4 \
    sampler_mcs=0.25 optimizer.lr=3e-3 optimizer.symbolic_lr=3e-2 measure_every=5 snapshot_every=50 \
    checkpoint_every=50 progress=false "output=$dir/train.h5"
[ -e sim.h5 ] || $spinsim simulate model=neural_cpm "model.checkpoint=$dir/train.ckpt.pt" "lattice.size=[64,64]" \
    model.layout=data "model.layout_data=$dir/nuclei.h5" temperature=1.0 batch=4 "sweeps=$sweeps" thermalize=0 \
    snapshot_every=2 progress=false "output=$dir/sim.h5"
$spinsim evaluate sim.h5 reference=nuclei.h5 metrics=[p_volume,p_unfragmented] output=evaluate
$spinsim export sim.h5 "formats=[tiff,vtk,csv]" output=export
$spinsim render nuclei.h5 "replicas=[0,1,2,3]" output=render_data
$spinsim render sim.h5 "replicas=[0,1,2,3]" output=render_sim
