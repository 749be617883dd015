"""One thin converter per dataset: ``python -m data_prep.<dataset> dataset.raw=...``.

Each script only hands its dataset's jobs to the shared runner. The readers and converters they
call live in the package (:mod:`moseg.datasets`), so ``moseg`` never imports this folder."""
