#!/usr/bin/env bash
# The figures and printed results of the docs, regenerated from the command line.
#
#   scripts/docs_figures.sh walkthrough DIR   the README's walkthrough: the 2D Ising sweep, collect
#                                             and render; prints the Tc line with the commit
#                                             (about 10 s of sweeps on two cores)
#   scripts/docs_figures.sh datasets DIR      the two Neural CPM data sets and their strips
#                                             (docs/figures/{cellular_mnist,bipolar}_data.png)
#   scripts/docs_figures.sh tables DIR        Tables 2 and 3 at the reduced scale: every model
#                                             trained, simulated and scored (hours on two cores;
#                                             scripts/neural_cpm_tables.sh), then the tables as
#                                             Markdown and docs/figures/neural_cpm_*.png and the
#                                             generator's bipolar variance fractions
#
# Every target writes under DIR and then into docs/figures/; a step whose outputs exist is
# skipped. SPINSIM (default: spinsim) names the command; PYTHON (default: python) the
# interpreter that has spinsim. Printed results go to DIR/<target>.txt as well.
set -euo pipefail
what=${1:?walkthrough, datasets or tables}
dir=$(realpath -m "${2:?an output folder}")
spinsim=${SPINSIM:-spinsim}
python=${PYTHON:-python}
root=$(cd "$(dirname "$0")/.." && pwd)
figures=$root/docs/figures
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
mkdir -p "$dir"

case "$what" in
walkthrough)
    if [ ! -e "$dir/ising-tc/2/simulate.h5" ]; then
        $spinsim simulate -m lattice.size=8,16,32 \
            "temperature=[2.0,2.1,2.16,2.2,2.23,2.26,2.29,2.32,2.36,2.4,2.5,2.6]" \
            batch=8 sweeps=4000 thermalize=500 exchange_every=1 progress=false \
            "hydra.sweep.dir=$dir/ising-tc"
    fi
    $spinsim collect "$dir/ising-tc" | tee "$dir/walkthrough.txt"
    $spinsim render "$dir/ising-tc/2/simulate.h5" "replicas=[0,40,88]" fps=8 >/dev/null
    echo "measured at commit $commit on $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)" \
        | tee -a "$dir/walkthrough.txt"
    ;;
datasets)
    # docs/neural-cpm-data.md's runs mnist_data and bip_data (about 4 and 10 min on two cores)
    [ -e "$dir/mnist_data/simulate.h5" ] || $spinsim simulate experiment=cellular_mnist batch=1280 seed=1 \
        progress=false "output=$dir/mnist_data/simulate.h5"
    [ -e "$dir/bip_data/simulate.h5" ] || $spinsim simulate experiment=bipolar batch=1000 seed=1 \
        progress=false "output=$dir/bip_data/simulate.h5"
    $python "$root/scripts/neural_cpm_figures.py" "$dir/mnist_data/simulate.h5" \
        "$figures/cellular_mnist_data.png" --scale 1
    $python "$root/scripts/neural_cpm_figures.py" "$dir/bip_data/simulate.h5" \
        "$figures/bipolar_data.png" --n 6 --scale 1
    ;;
tables)
    "$root/scripts/neural_cpm_tables.sh" "$dir" data
    for data in mnist bipolar; do
        for model in generator cellsort cellsort_potential cnn nh1_cnn neural closure; do
            "$root/scripts/neural_cpm_tables.sh" "$dir" "$data" "$model"
        done
    done
    $python "$root/scripts/neural_cpm_tables_summary.py" "$dir" --figures "$dir/figures" | tee "$dir/tables.txt"
    for f in mnist_states bipolar_states bipolar_fractions; do
        cp "$dir/figures/neural_cpm_$f.png" "$figures/"
    done
    cp "$dir/bipolar/generator/evaluate/variance_fractions.png" "$figures/bipolar_variance_fractions_generator.png"
    echo "measured at commit $commit" | tee -a "$dir/tables.txt"
    ;;
*)
    echo "$what: walkthrough, datasets or tables" >&2
    exit 2
    ;;
esac
