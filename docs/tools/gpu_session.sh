#!/bin/bash
# The GPU session that produced docs/reproducing/gpu (one NVIDIA H200, 16 CPU cores; run there
# in two calls, the soae-table1 --scale full parts in the second):
# every model part in its own process (the GPU runs them side by side), then the reports
# from the stored parts.  Run from the repository root with krylovadv importable and a CUDA
# torch; OUT (default ./gpu-out) receives the report folders.  About 9 minutes in all.
set -u
OUT=${OUT:-gpu-out}; W=$OUT/weights; R=$OUT/reports; mkdir -p "$W" "$R"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MPLBACKEND=Agg
T=docs/tools/gpu_resnet18.py
# Qian et al.'s ResNet-18 models: train (about 0.5-4.5 min each, side by side), then each
# model's four soae-table1 parts at quick sizes.
for m in natural pgd-linf trades soat; do
  ( python3 "$T" train "$m" --out "$W" || exit
    for p in FGSM PGD SOAE baseline; do
      python3 "$T" part soae-table1 "resnet18-$m" "$p" --output "$R/soae-table1-resnet18" --resnet &
    done; wait ) &
done
# Both tables at --scale full on the shipped zoo models, one process per part.
for m in madry-pgd-linf madry-trades madry-pgd-l2; do
  for p in "PGD (ℓ2, 4.0)" "PGD (ℓ∞, 0.3)" "S-O (ℓ2, 4.0)" "S-O (ℓ∞, 0.3)" baseline; do
    python3 "$T" part so-table1 "$m" "$p" --output "$R/so-table1-full" --scale full &
  done
done
for m in madry-natural madry-pgd-linf madry-trades soat; do
  for p in FGSM PGD SOAE baseline; do
    python3 "$T" part soae-table1 "$m" "$p" --output "$R/soae-table1-full" --scale full &
  done
done
wait
python3 "$T" report so-table1 --output "$R/so-table1-full" --scale full
python3 "$T" report soae-table1 --output "$R/soae-table1-full" --scale full
python3 "$T" report soae-table1 --output "$R/soae-table1-resnet18" --resnet
