#!/usr/bin/env bash
# Your own tissue, end to end: label images as a segmentation tool writes them -> spinsim import
# -> train a Neural Hamiltonian with the cell-sorting closure -> simulate the trained model from
# the data's lattice -> evaluate it against the data -> export and render (docs/neural-cpm.md).
#
#   scripts/tissue_example.sh DIR [SIZE FRAMES STEPS SWEEPS]
#
# The label stack is made here with numpy, not by spinsim: a tissue of two cell types (the
# darker ones gathered in the middle) as a Voronoi tiling, its cells numbered in no order with
# gaps (as Cellpose or a watershed number them), a background border, and an id,type table.
# SIZE (default 48) is the lattice, FRAMES (default 16) the images, STEPS (default 150) the
# training steps, SWEEPS (default 10) the MCS simulated (the Neural Hamiltonian's sampler costs
# about 35 s an MCS of 8 48x48 lattices on two CPU cores). SPINSIM (default: spinsim) and PYTHON (default: python) name the programs.
# A step whose output exists is skipped.
set -euo pipefail
dir=$(realpath -m "$1"); size=${2:-48}; frames=${3:-16}; steps=${4:-150}; sweeps=${5:-10}
spinsim=${SPINSIM:-spinsim}; python=${PYTHON:-python}
mkdir -p "$dir" && cd "$dir"

[ -e labels.tif ] || $python - "$size" "$frames" <<'PY'
import sys
import numpy as np
import tifffile

size, frames = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(7)
stack, table = [], {}
for f in range(frames):
    cells = max(4, size * size // 90)
    centres = rng.uniform(0, size, size=(cells, 2))
    yy, xx = np.mgrid[:size, :size]
    nearest = ((yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2).argmin(-1)
    ids = rng.choice(np.arange(1, 60000), size=cells, replace=False)  # no order, gaps
    central = np.hypot(*(centres - size / 2).T) < size / 4
    for i, c in zip(ids, central):
        table[int(i)] = "dark" if c else "light"
    image = ids[nearest]
    image[:, : size // 16] = 0  # a background band, as the edge of a field of view
    stack.append(image)
tifffile.imwrite("labels.tif", np.stack(stack).astype(np.uint16), photometric="minisblack")
with open("types.csv", "w") as f:
    f.write("id,type\n" + "".join(f"{i},{t}\n" for i, t in sorted(table.items())))
PY
[ -e tissue.h5 ] || $spinsim import labels.tif types=types.csv type_names=[medium,light,dark] output=tissue.h5
[ -e train.ckpt.pt ] || $spinsim train data=tissue.h5 model.hamiltonian=closure model.preset=cellular_mnist \
    "steps=$steps" batch=8 sampler_mcs=0.25 optimizer.lr=3e-3 optimizer.symbolic_lr=3e-2 \
    measure_every=5 snapshot_every=50 checkpoint_every=50 progress=false "output=$dir/train.h5"
# from the data's own states with their own types (a table per replica: the sorting the data
# shows), at the training's temperature 1
[ -e sim.h5 ] || $spinsim simulate model=neural_cpm "model.checkpoint=$dir/train.ckpt.pt" "lattice.size=[$size,$size]" \
    model.layout=data "model.layout_data=$dir/tissue.h5" model.layout_types=data temperature=1.0 batch=8 \
    "sweeps=$sweeps" thermalize=0 snapshot_every=2 progress=false "output=$dir/sim.h5"
$spinsim evaluate sim.h5 reference=tissue.h5 metrics=[p_volume,p_unfragmented] output=evaluate
$spinsim export sim.h5 "formats=[tiff,vtk,csv]" output=export
shown=$(seq -s, 0 $(( (frames < 4 ? frames : 4) - 1 )))  # the first four frames (or fewer)
$spinsim render tissue.h5 "replicas=[$shown]" output=render_data
$spinsim render sim.h5 "replicas=[$shown]" output=render_sim
