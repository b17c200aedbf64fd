#!/usr/bin/env bash
# The Neural CPM paper's Tables 2 and 3 from the command line: make the data sets, train a
# model of the tables, simulate it, score it (docs/neural-cpm-data.md, "Tables 2 and 3").
#
#   scripts/neural_cpm_tables.sh DIR data                 the two data sets and the classifier
#   scripts/neural_cpm_tables.sh DIR mnist|bipolar MODEL  train MODEL, simulate it, score it
#
# MODEL: cellsort, cellsort_potential, cnn, nh1_cnn, neural, closure, or generator (no
# training: the data's own model, simulated as the others, for the scores of the truth);
# further arguments go to
# `spinsim train` and `spinsim simulate` (e.g. device=cuda). Environment: SCALE=small (the
# default: the reduced scale that runs on two CPU cores, experiments *_small) or SCALE=paper
# (the paper's lattices, data set sizes and training: a GPU job); SPINSIM (default: spinsim);
# THREADS (default 0: torch's choice). A step whose outputs exist is skipped, so a killed
# run resumes where it stopped (a training from its last checkpoint).
set -euo pipefail
dir=$(realpath -m "$1"); what=$2; shift 2
spinsim=${SPINSIM:-spinsim}
threads=device.threads=${THREADS:-0}
scale=${SCALE:-small}
case "$scale" in
    small) suffix=_small; trajectories=12 ;;
    paper) suffix=; trajectories=50 ;;
    *) echo "SCALE=$scale: small or paper" >&2; exit 2 ;;
esac
mkdir -p "$dir"; cd "$dir"

if [ "$what" = data ]; then
    [ -e data/mnist.h5 ] || $spinsim simulate experiment=cellular_mnist$suffix batch=1280 seed=1 \
        progress=false "$threads" output="$dir/data/mnist.h5" "$@"
    [ -e data/bipolar.h5 ] || $spinsim simulate experiment=bipolar$suffix batch=1000 seed=1 \
        progress=false "$threads" output="$dir/data/bipolar.h5" "$@"
    [ -e classifier.pt ] || $spinsim evaluate data/mnist.h5 mode=train_classifier \
        classifier="$dir/classifier.pt" output="$dir/classifier"
    exit 0
fi

model=$1; shift
# The authors' protocol: trajectories start from training final states with their cells'
# types permuted; 20 stored intervals, every frame scored (the initial one weighs 1/21, the
# authors' 21 frames); cells within 10% of V* of the data's volume range; fragments counted
# on the open lattice, a vanished cell fragmented.
case "$what/$scale" in
    mnist/small) sim=(lattice.size=54 sweeps=40 snapshot_every=2) ;;
    mnist/paper) sim=(lattice.size=100 sweeps=200 snapshot_every=10) ;;
    bipolar/small) sim=(lattice.size=36 sweeps=100 snapshot_every=5) ;;
    bipolar/paper) sim=(lattice.size=149 sweeps=2000 snapshot_every=100) ;;
    *) echo "usage: $0 DIR data | $0 DIR mnist|bipolar MODEL [overrides]" >&2; exit 2 ;;
esac
case "$what" in
    mnist)
        train=(experiment=train_cellular_mnist$suffix data="$dir/data/mnist.h5")
        score=(reference="$dir/data/mnist.h5" classifier="$dir/classifier.pt" frame_every=1)
        sim+=(model.layout=data model.layout_data="$dir/data/mnist.h5")
        ;;
    bipolar)
        train=(experiment=train_bipolar$suffix data="$dir/data/bipolar.h5")
        score=(reference="$dir/data/bipolar.h5" frame_every=1)
        sim+=(model.layout=data model.layout_data="$dir/data/bipolar.h5")
        ;;
esac
# every model trains with its experiment's budget and optimiser (the symbolic parameters at
# optimizer.symbolic_lr, the networks' at optimizer.lr), so the rows compare like with like

run=$what/$model
mkdir -p "$run"
if [ "$model" = generator ]; then
    # no training: the data's own experiment, simulated as the trained models are
    simulated=(experiment=$([ "$what" = mnist ] && echo cellular_mnist || echo bipolar)$suffix)
else
    simulated=(model=neural_cpm model.checkpoint="$dir/$run/train.ckpt.pt" temperature=1
               sampler.neighbour=differing)
    if [ ! -e "$run/train.done" ]; then
        if [ -e "$run/train.ckpt.pt" ]; then
            $spinsim train resume="$dir/$run/train.ckpt.pt" progress=false "$threads" "$@"
        else
            $spinsim train "${train[@]}" model.hamiltonian="$model" progress=false "$threads" \
                output="$dir/$run/train.h5" "$@"
        fi
        touch "$run/train.done"
    fi
fi
if [ ! -e "$run/sim.done" ]; then
    rm -rf "$run/sim"
    $spinsim simulate "${simulated[@]}" batch=$trajectories seed=2 thermalize=0 \
        "${sim[@]}" progress=false "$threads" output="$dir/$run/sim/sim.h5" "$@"
    touch "$run/sim.done"
fi
$spinsim evaluate "$run/sim/sim.h5" "${score[@]}" output="$dir/$run/evaluate"
